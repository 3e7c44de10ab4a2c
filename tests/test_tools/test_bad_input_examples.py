"""Every documented bad-input case raises a documented error naming the input,
and docs/reliability.md shows the message users really see."""
import os.path as osp
import sys

import pytest
from conftest import REPO_ROOT

from mmfusion.errors import MMFusionError

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'misc'))
import bad_input_examples  # noqa: E402


@pytest.fixture(scope='module')
def rows():
    return bad_input_examples.collect()


def test_every_case_is_a_documented_error_naming_the_input(rows):
    assert len(rows) == len(bad_input_examples.CASES) >= 20
    for case, (error_type, message) in rows:
        assert issubclass(error_type, MMFusionError), f'{case.what}: {error_type}'
        for name in case.names:
            assert name in message, f'{case.what}: {name!r} not in {message!r}'
        assert 'Traceback' not in message


def test_the_docs_table_is_the_current_output(rows):
    docs = open(osp.join(REPO_ROOT, 'docs', 'reliability.md'), encoding='utf-8').read()
    for line in bad_input_examples.markdown(rows).splitlines()[2:]:
        assert line in docs, ('docs/reliability.md is out of date; regenerate its table with '
                              f'python tools/misc/bad_input_examples.py. Missing:\n{line}')
