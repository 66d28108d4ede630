"""The chain planner: carvekit's defaults, its per-network recommendation, then the job's knobs."""
from __future__ import annotations

from models import registry
from pipeline.carvekit.chain import configured, manual_plan, plan_networks, post_networks


def test_model_carvekit_is_tracer_with_cascadepsp_and_fba_at_carvekits_defaults():
    plan = manual_plan("carvekit", {})
    assert (plan.net, plan.post) == ("tracer_b7", "cascade_fba")
    assert (plan.refine_mask_size, plan.matting_mask_size, plan.trimap_prob_threshold,
            plan.trimap_dilation, plan.trimap_erosion, plan.refine_mask_binary_threshold) == (900, 2048, 231, 30, 5, 127)


def test_a_network_alone_has_no_post_processing():
    plan = manual_plan("isnet", {})
    assert (plan.net, plan.post, plan.seg_mask_size) == ("isnet", "none", None)


def test_deeplabv3_gets_carvekits_recommended_trimap_and_a_job_knob_wins_over_it():
    assert (manual_plan("deeplabv3", {}).trimap_dilation, manual_plan("deeplabv3", {}).trimap_erosion) == (40, 20)
    plan = manual_plan("deeplabv3", {"trimap_dilation": 12, "post": "fba"})
    assert (plan.trimap_dilation, plan.trimap_erosion, plan.post) == (12, 20, "fba")


def test_the_automatic_modes_start_from_a_configurable_network_only():
    """carvekit's CLI configures tracer_b7 or isnet; any other job model starts from tracer_b7 at 960."""
    assert (configured("u2netp", {}).net, configured("u2netp", {}).seg_mask_size) == ("tracer_b7", 960)
    assert (configured("isnet", {}).net, configured("isnet", {}).seg_mask_size) == ("isnet", 1024)
    plan = configured("carvekit", {"seg_mask_size": 640, "matting_mask_size": 512})
    assert (plan.seg_mask_size, plan.matting_mask_size, plan.post) == (640, 512, "cascade_fba")
    assert configured("isnet", {"post": "none"}).post == "none"


def test_a_job_knob_changes_only_its_own_field():
    plan = manual_plan("tracer_b7", {"refine_mask_size": 512})
    assert plan.refine_mask_size == 512
    # every other field is carvekit's CLI / MLConfig default (carvekit/ml/wrap, carvekit/web/schemas)
    assert (plan.net, plan.seg_mask_size, plan.post, plan.refine_accel_size, plan.refine_mask_binary_threshold,
            plan.refine_global_only, plan.matting_mask_size, plan.trimap_prob_threshold, plan.trimap_dilation,
            plan.trimap_erosion, plan.trimap_filter_threshold, plan.fba_noise_filter, plan.scene) == (
        "tracer_b7", None, "none", 2048, 127, False, 2048, 231, 30, 5, -1, True, None)
    assert manual_plan("tracer_b7", {}).refine_mask_size == 900


def test_the_networks_a_plan_may_run_are_known_before_the_image():
    assert plan_networks("none", "carvekit", {}) == ("tracer_b7",)
    assert plan_networks("none", "isnet", {"post": "fba"}) == ("isnet",)
    # the automatic modes choose among their own networks whatever the job's (default) model is
    for model in ("briaai/RMBG-2.0", "tracer_b7"):
        assert plan_networks("autoscene", model, {}) == ("scene_classifier", "isnet", "tracer_b7")
        assert plan_networks("auto", model, {}) == ("scene_classifier", "yolov4", "isnet", "tracer_b7")
    assert set(plan_networks("auto", "carvekit", {})) <= set(registry.names())


def test_the_networks_a_post_step_may_run_are_known_before_the_image():
    assert post_networks("none", "carvekit", {}) == ("cascadepsp-carveset", "fba")
    assert post_networks("none", "isnet", {}) == ()
    assert post_networks("none", "isnet", {"post": "fba"}) == ("fba",)
    assert post_networks("autoscene", "u2netp", {}) == ("cascadepsp-carveset", "fba")  # the configured chain's
    assert post_networks("auto", "u2netp", {}) == ("cascadepsp-carveset", "fba")  # tracer_b7's and isnet's
    assert post_networks("auto", "u2netp", {"post": "none"}) == ()
