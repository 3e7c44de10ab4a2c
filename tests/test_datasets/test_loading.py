"""LoadImageFromFile: mmcv's loader with a decoded-image cache and clear errors."""
import numpy as np
import pytest
from PIL import Image

from mmfusion.datasets.transforms import ImageLoadError, LoadImageFromFile


@pytest.fixture
def png(tmp_path):
    path = str(tmp_path / 'a.png')
    Image.fromarray(np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)).save(path)
    return path


def test_loads_bgr_like_mmcv(png):
    from mmcv.transforms import LoadImageFromFile as MMCVLoad
    ours = LoadImageFromFile()(dict(img_path=png))
    theirs = MMCVLoad()(dict(img_path=png))
    np.testing.assert_array_equal(ours['img'], theirs['img'])
    assert ours['img_shape'] == ours['ori_shape'] == (4, 5)


def test_cache_returns_private_copies_and_evicts_least_recent(png, tmp_path):
    other = str(tmp_path / 'b.png')
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(other)
    load = LoadImageFromFile(cache_size=1)
    first = load(dict(img_path=png))['img']
    first[:] = 0  # a later transform writing into its array must not reach the cache
    again = load(dict(img_path=png))['img']
    np.testing.assert_array_equal(again, LoadImageFromFile()(dict(img_path=png))['img'])
    assert list(load._cache) == [png]
    load(dict(img_path=other))
    assert list(load._cache) == [other]  # cache_size=1: the older one went


@pytest.mark.parametrize('content, match', [
    (b'', 'image file is empty'),
    (b'not an image at all', 'cannot decode'),
])
def test_bad_files_name_the_file(tmp_path, content, match):
    path = tmp_path / 'bad.png'
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=match) as info:
        LoadImageFromFile()(dict(img_path=str(path)))
    assert str(path) in str(info.value)


def test_truncated_png_is_a_clear_error(png, tmp_path):
    data = open(png, 'rb').read()
    path = tmp_path / 'cut.png'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageLoadError, match='cut.png'):
        LoadImageFromFile()(dict(img_path=str(path)))


def test_missing_file_and_ignore_empty(tmp_path):
    missing = str(tmp_path / 'nope.png')
    with pytest.raises(FileNotFoundError, match='nope.png'):
        LoadImageFromFile()(dict(img_path=missing))
    assert LoadImageFromFile(ignore_empty=True)(dict(img_path=missing)) is None
    with pytest.raises(ValueError, match='cache_size must be >= 0'):
        LoadImageFromFile(cache_size=-1)
