"""Understanding a trained model: corruptions, missing modalities, adversarial
attacks, robustness scores, class activation maps, attention maps,
integrated gradients and per-modality (Shapley) contributions.

One module per family; the tools ``tools/analysis_tools/robustness.py`` and
``tools/analysis_tools/explain.py`` put them together.
"""
from .attacks import (
    AttackResult,
    embedding_layer,
    fgsm_attack,
    model_loss,
    perturb_embeddings,
    pgd_attack,
)
from .attention import record_attention
from .attribution import integrated_gradients
from .cam import (
    CAM_METHODS,
    argmax_point,
    class_activation_map,
    dense_score_fn,
    find_target_layer,
    pointing_hits,
    upsample,
)
from .corruptions import CORRUPTIONS, NUM_LEVELS, Corrupt, corrupt_pipeline, data_kind
from .evaluate import build_evaluator, build_loader, evaluate, per_sample_scores
from .missing import MISSING_MODES, drop_modalities, supports_modality_mask
from .robustness_metrics import effective_robustness, relative_robustness
from .shapley import exact_shapley, leave_one_out, sampled_shapley, shapley_values

__all__ = [
    'AttackResult', 'CAM_METHODS', 'CORRUPTIONS', 'Corrupt', 'MISSING_MODES', 'NUM_LEVELS',
    'argmax_point',
    'build_evaluator', 'build_loader', 'class_activation_map', 'corrupt_pipeline', 'data_kind',
    'dense_score_fn',
    'drop_modalities', 'effective_robustness', 'embedding_layer', 'evaluate', 'exact_shapley',
    'fgsm_attack', 'find_target_layer', 'integrated_gradients', 'leave_one_out', 'model_loss',
    'per_sample_scores', 'perturb_embeddings', 'pgd_attack', 'pointing_hits', 'record_attention',
    'relative_robustness', 'sampled_shapley', 'shapley_values', 'supports_modality_mask',
    'upsample'
]
