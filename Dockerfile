# syntax=docker/dockerfile:1
# RunPod serverless worker: background removal (RMBG-2.0 / BiRefNet, carvekit chain), face
# restoration, upscaling, background matting. Needs BuildKit (the HF_TOKEN secret mount below):
#   DOCKER_BUILDKIT=1 docker build --secret id=HF_TOKEN,env=HF_TOKEN -t you/bg-worker .
# torch 2.14.1 from PyPI is its CUDA 13.0 build: the host's NVIDIA driver must support CUDA 13.0
# (driver 580 or newer); an older driver makes the worker refuse to start with DEVICE=cuda.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WEIGHTS_DIR=/weights \
    LOCAL_BUCKET_DIR=/app/bucket \
    HF_HOME=/tmp/hf

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY models/ models/
COPY imaging/ imaging/
COPY pipeline/ pipeline/
COPY worker/ worker/
COPY builder/ builder/
COPY handler.py .

# Weights are baked into the image at build time; at run time nothing touches the network.
# MODELS: registry names to bake (space-separated). Every file comes from a pinned Hugging Face commit
# or a SHA-256-checked GitHub release asset; `python -m builder.fetch_weights --plan MODELS...` lists
# them without network. RMBG-2.0 is gated: pass HF_TOKEN as a build secret.
ARG MODELS="briaai/RMBG-2.0 u2netp"
RUN --mount=type=secret,id=HF_TOKEN,required=false \
    HF_TOKEN="$(cat /run/secrets/HF_TOKEN 2>/dev/null)" python -m builder.fetch_weights ${MODELS} \
    && rm -rf /tmp/hf
# The sample the RunPod hub's tests (.runpod/tests.json) cut out when no bucket is configured.
RUN python -m builder.hub_files --sample /app/bucket/ogs/sample.png
ENV HF_HUB_OFFLINE=1

CMD ["python", "-u", "handler.py"]
