"""What dense-prediction heads read from data samples."""
from mmfusion.structures import MultiModalDataSample


def image_size(sample: MultiModalDataSample | None,
               key: str = 'img_shape') -> tuple[int, int] | None:
    """(h, w) from the data sample's metainfo ``key`` (``img_shape``,
    ``ori_shape``, ``batch_input_shape``), or None when it has none."""
    shape = sample.metainfo.get(key) if sample is not None else None
    return None if shape is None else (int(shape[0]), int(shape[1]))
