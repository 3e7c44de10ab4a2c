"""Drawing data samples (boxes, masks, label maps, text prompts, depth) and
the hook that draws test predictions (``tools/test.py --show-dir``)."""
from .local_visualizer import DEFAULT_PALETTE, MultiModalVisualizer
from .visualization_hook import MultiModalVisualizationHook

__all__ = ['DEFAULT_PALETTE', 'MultiModalVisualizationHook', 'MultiModalVisualizer']
