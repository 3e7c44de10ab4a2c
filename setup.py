"""Install mmfusion: ``pip install -e .`` (add ``[tests]`` for the test suite)."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name: str) -> list:
    with open(osp.join(HERE, 'requirements', name), encoding='utf-8') as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line and not line.startswith('-')]


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'mmfusion', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


# What ``mim`` (openmim) and ``mmfusion::`` config paths look for inside the
# installed package: ``mmfusion/.mim/{configs,tools,model-index.yml}``.
MIM_FILES = ('configs', 'tools', 'model-index.yml')
MIM_DIR = osp.join('mmfusion', '.mim')
# Commands that install the source tree in place: ``setup.py develop`` and
# ``editable_wheel``, which pip runs for ``pip install -e .`` (PEP 660). Plain
# ``dist_info`` is not among them because ``pip wheel`` runs it too.
DEVELOP_COMMANDS = ('develop', 'editable_wheel')


def _remove(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def add_mim_extension() -> None:
    """Link tools/, configs/ and model-index.yml into ``mmfusion/.mim`` for an in-place install.

    An editable install imports mmfusion from this checkout, so relative
    symlinks keep ``.mim`` in step with the files being edited. Builds of
    wheels and installs copy the files instead, into the build directory (see
    :class:`BuildPyWithMim`), so they never touch the checkout's ``.mim``.
    Both the links and any stale copies under ``mmfusion/.mim`` are git-ignored.
    """
    if not any(cmd in sys.argv for cmd in DEVELOP_COMMANDS):
        return
    mim_path = osp.join(HERE, MIM_DIR)
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        if not osp.exists(src):
            continue
        target = osp.join(mim_path, name)
        _remove(target)  # a copy left by an older build, or a link to elsewhere
        os.symlink(osp.relpath(src, mim_path), target)


class BuildPyWithMim(build_py):
    """``build_py`` that also copies tools/, configs/ and model-index.yml into
    ``<build_lib>/mmfusion/.mim``, so every wheel, sdist-built wheel and
    ``setup.py install`` ships them as package data."""

    def run(self) -> None:
        super().run()
        # An editable build maps the package to the checkout, whose .mim holds links.
        if getattr(self, 'editable_mode', False):
            return
        mim_path = osp.join(self.build_lib, MIM_DIR)
        _remove(mim_path)  # drop what an earlier build left, e.g. a deleted config
        os.makedirs(mim_path)
        for name in MIM_FILES:
            src = osp.join(HERE, name)
            target = osp.join(mim_path, name)
            if osp.isdir(src):
                shutil.copytree(src, target,
                                ignore=shutil.ignore_patterns('__pycache__', '*.py[cod]'))
            elif osp.isfile(src):
                shutil.copyfile(src, target)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmfusion',
        version=get_version(),
        description='A registry-based framework for multimodal deep learning',
        long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.10',  # X | None annotations at run time
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'projects')),
        include_package_data=True,
        cmdclass={'build_py': BuildPyWithMim},
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            'tests': read_requirements('tests.txt'),
            'optional': read_requirements('optional.txt'),
            'all': read_requirements('tests.txt') + read_requirements('optional.txt'),
            # DeepSpeedStrategy; MMEngine 0.10's strategy imports a module 0.19.7 removed
            'deepspeed': ['deepspeed<0.19.7'],
        },
        zip_safe=False,
    )
