"""Compatibility fixes for mmengine 0.10.x on current setuptools and torch.

Two things break there, and both are fixed narrowly instead of by
downgrading packages or disabling safety checks:

1. mmengine resolves ``pkg::path`` config inheritance (``_base_ =
   'mmfusion::vqa/mmshapes_vqa.py'``) with ``pkg_resources``, which
   setuptools >= 81 no longer ships, and only for a fixed list of OpenMMLab
   packages. We register ``mmfusion`` and, when ``pkg_resources`` is missing,
   give mmengine's config module the same lookups built on ``importlib``.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``, and mmengine's
   checkpoints hold objects it refuses. mmfusion's checkpoints hold only
   plain data, and mmengine loads local checkpoints through mmfusion's
   weights-only loader and writes files atomically (see
   :mod:`mmfusion.engine.checkpoint`).
"""
import importlib.util
import os.path as osp


def _installed_path(package: str) -> str:
    """Directory of an importable package, like mmengine's ``get_installed_path``."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f'package {package!r} is not installed')
    return osp.dirname(spec.origin)


def _is_installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _mmfusion_config_root() -> str:
    """The source tree's configs/ in a checkout (editable install), else the
    copy a wheel ships in ``mmfusion/.mim/configs``."""
    pkg = _installed_path('mmfusion')
    repo = osp.dirname(pkg)
    if osp.isfile(osp.join(repo, 'setup.py')) and osp.isdir(osp.join(repo, 'configs')):
        return osp.join(repo, 'configs')
    return osp.join(pkg, '.mim', 'configs')


def apply_mmengine_compat() -> None:
    """Idempotently apply both fixes described in the module docstring."""
    from mmengine.config import config as mm_config
    from mmengine.config import utils as mm_config_utils

    mm_config_utils.MODULE2PACKAGE.setdefault('mmfusion', 'mmfusion')
    if not getattr(mm_config, '_mmfusion_patched', False):
        # mmengine looks a ``pkg::name`` config up in the package's model index,
        # then in ``.mim/configs``; mmfusion keeps no model index, so its configs
        # resolve directly (installed copy first, then the source tree).
        original_cfg_path = mm_config._get_external_cfg_path

        def external_cfg_path(package_path: str, cfg_name: str) -> str:
            if osp.basename(package_path) != 'mmfusion':
                return original_cfg_path(package_path, cfg_name)
            path = osp.join(_mmfusion_config_root(), cfg_name)
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'mmfusion has no config {cfg_name!r} (looked for {path})')
            return path

        mm_config._get_external_cfg_path = external_cfg_path
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            mm_config.get_installed_path = _installed_path
            mm_config.is_installed = _is_installed
        mm_config._mmfusion_patched = True

    from ..engine.checkpoint import use_safe_checkpoint_io
    use_safe_checkpoint_io()
