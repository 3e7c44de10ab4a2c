"""Install mmfusion: ``pip install -e .`` (add ``[tests]`` for the test suite)."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

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


def add_mim_extension() -> None:
    """Ship configs/ inside the package as mmfusion/.mim/configs for wheel builds.

    ``_base_ = 'mmfusion::vqa/mmshapes_vqa.py'`` finds configs there when
    mmfusion is installed as a package; an editable install reads the source
    tree's configs/ directly, so nothing is copied then.
    """
    if not any(cmd in sys.argv for cmd in ('bdist_wheel', 'sdist', 'build', 'install')):
        return
    target = osp.join(HERE, 'mmfusion', '.mim', 'configs')
    if osp.isdir(target):
        shutil.rmtree(target)
    os.makedirs(osp.dirname(target), exist_ok=True)
    shutil.copytree(osp.join(HERE, 'configs'), target)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmfusion',
        version=get_version(),
        description='A registry-based framework for multimodal deep learning',
        long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.9',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'projects')),
        include_package_data=True,
        package_data={'mmfusion': ['.mim/configs/**/*.py']},
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            'tests': read_requirements('tests.txt'),
            'optional': read_requirements('optional.txt'),
            'all': read_requirements('tests.txt') + read_requirements('optional.txt'),
        },
        zip_safe=False,
    )
