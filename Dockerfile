# RunPod serverless worker: background removal (RMBG-2.0 / BiRefNet, carvekit chain).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WEIGHTS_DIR=/weights \
    HF_HOME=/tmp/hf

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY models/ models/
COPY pipeline/ pipeline/
COPY builder/ builder/
COPY handler.py .

# Weights are baked into the image at build time; at run time nothing touches the network.
# MODELS: registry names to bake (space-separated). RMBG-2.0 is gated: pass HF_TOKEN as a build secret.
ARG MODELS="briaai/RMBG-2.0 u2netp"
RUN --mount=type=secret,id=HF_TOKEN,required=false \
    HF_TOKEN="$(cat /run/secrets/HF_TOKEN 2>/dev/null)" python -m builder.fetch_weights ${MODELS} \
    && rm -rf /tmp/hf
ENV HF_HUB_OFFLINE=1

CMD ["python", "-u", "handler.py"]
