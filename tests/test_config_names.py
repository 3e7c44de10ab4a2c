"""Config file names stay unique and inheritance stays shallow.

``mim train mmfusion <name>`` and ``mim search`` look a config up by its file
name alone, so two configs with the same basename (say a ``_base_`` dataset
part and the task config built on it) make the lookup ambiguous.
"""
import glob
import os.path as osp
from collections import defaultdict

from conftest import REPO_ROOT
from test_configs import base_depth


def all_config_files() -> list:
    """Every config under configs/ and projects/*/configs, ``_base_`` parts included."""
    patterns = ('configs/**/*.py', 'projects/*/configs/**/*.py')
    files = set()
    for pattern in patterns:
        files.update(glob.glob(osp.join(REPO_ROOT, pattern), recursive=True))
    return sorted(files)


def test_config_tree_is_found():
    names = {osp.basename(p) for p in all_config_files()}
    # one task config, one dataset part and one project config: the glob covers all three trees
    assert {'mmshapes_vqa.py', 'mmshapes_vqa_dataset.py', 'mmshapes_vqa_product.py'} <= names


def test_config_basenames_are_unique():
    by_name = defaultdict(list)
    for path in all_config_files():
        by_name[osp.basename(path)].append(osp.relpath(path, REPO_ROOT))
    duplicates = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not duplicates, f'config basenames used more than once: {duplicates}'


def test_inheritance_is_at_most_two_levels():
    # Project configs inherit with ``mmfusion::`` paths, which base_depth cannot follow
    # from the file system; only the in-tree configs are checked here.
    too_deep = {}
    for path in all_config_files():
        if osp.relpath(path, REPO_ROOT).startswith('projects'):
            continue
        depth = base_depth(path)
        if depth > 2:
            too_deep[osp.relpath(path, REPO_ROOT)] = depth
    assert not too_deep, f'configs with more than two levels of _base_: {too_deep}'


def test_config_basenames_differ_from_code_files():
    # In an installed wheel, ``mim train mmfusion NAME.py`` searches the whole package
    # directory (the library and .mim/tools as well as .mim/configs), so a config
    # named like a module, e.g. fusion/concat.py, would be ambiguous there.
    code = defaultdict(list)
    for tree in ('mmfusion', 'tools'):
        for path in glob.glob(osp.join(REPO_ROOT, tree, '**', '*.py'), recursive=True):
            code[osp.basename(path)].append(osp.relpath(path, REPO_ROOT))
    clashes = {osp.relpath(p, REPO_ROOT): code[osp.basename(p)]
               for p in all_config_files() if osp.basename(p) in code}
    assert not clashes, f'configs named like code files: {clashes}'


def test_model_index_lists_every_task_config():
    # ``mim search mmfusion`` reads model-index.yml and the metafiles it imports.
    import yaml

    index = yaml.safe_load(open(osp.join(REPO_ROOT, 'model-index.yml')))
    metafiles = sorted(index['Import'])
    assert metafiles == sorted(osp.relpath(p, REPO_ROOT) for p in glob.glob(
        osp.join(REPO_ROOT, 'configs', '*', 'metafile.yml')))
    listed, names = [], []
    for metafile in metafiles:
        meta = yaml.safe_load(open(osp.join(REPO_ROOT, metafile)))
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert 'Weights' not in model, 'nothing is downloadable'
            assert osp.isfile(osp.join(REPO_ROOT, model['Config'])), model['Config']
            listed.append(model['Config'])
            names.append(model['Name'])
    assert len(set(names)) == len(names)
    task_configs = sorted(osp.relpath(p, REPO_ROOT) for p in all_config_files()
                          if osp.relpath(p, REPO_ROOT).startswith('configs')
                          and '_base_' not in p)
    assert sorted(listed) == task_configs
