"""Every tool, every bad input: one ``error:`` line naming the input, exit 1
(2 for a usage error), no traceback and no result file; and
docs/reliability.md shows the messages the tools really print.

The matrix runs each tool as a subprocess about 80 times (each start imports
torch and mmengine), about 5 minutes on 2 cores, hence ``slow``.
"""
import os.path as osp
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'misc'))
import tool_error_matrix as matrix  # noqa: E402

pytestmark = pytest.mark.slow

SECTION = '## Every tool, every bad input'
# the cases, for the test ids (the paths in them do not matter here)
CASES = matrix.cases(matrix.Inputs('/inputs'))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tool_error_matrix'))
    return root, matrix.collect(root, workers=2)


def test_the_matrix_covers_every_tool_and_kind_of_bad_input():
    assert {c.tool for c in CASES} == set(matrix.TOOLS)
    assert {c.bad for c in CASES} == set(matrix.BAD_INPUTS)
    for tool, script in matrix.TOOLS.items():
        assert osp.isfile(osp.join(REPO_ROOT, script)), tool
    # the config-reading tools all meet the config cases
    for tool in ('train', 'test', 'infer', 'browse_dataset', 'print_config', 'benchmark',
                 'fusion_benchmark', 'get_flops', 'confusion_matrix', 'analyze_results'):
        kinds = {c.bad for c in CASES if c.tool == tool}
        assert {'missing config', 'config with a syntax error'} <= kinds, tool
    # and the checkpoint-reading ones the checkpoint cases
    for tool in ('train', 'test', 'infer'):
        kinds = {c.bad for c in CASES if c.tool == tool}
        assert set(matrix.BAD_INPUTS) == kinds, tool
    assert len(CASES) >= 80


def test_the_good_path_writes_what_the_check_looks_for(run):
    """The setup trained and tested for real; the files it wrote are the
    kind the check below would find, so an empty find means none was written."""
    root, _ = run
    found = matrix.result_files(osp.join(root, 'work'))
    assert 'vqa/epoch_1.pth' in found and 'vqa/last_checkpoint' in found
    assert 'vqa_test/metrics.json' in found


@pytest.mark.parametrize(
    'index', [pytest.param(i, marks=pytest.mark.xfail(strict=True, reason=c.known_bug))
              if c.known_bug else i for i, c in enumerate(CASES)],
    ids=[f'{c.tool}-{c.bad}-{c.detail}'.replace(' ', '_') for c in CASES])
def test_bad_input_fails_in_one_line_naming_it(run, index):
    _, outcomes = run
    outcome = outcomes[index]
    case = outcome.case
    assert (case.tool, case.bad, case.detail) == (
        CASES[index].tool, CASES[index].bad, CASES[index].detail)
    report = f'{case.tool} / {case.bad}:\n{outcome.stderr_tail}'
    assert outcome.status == case.status, report
    assert not outcome.traceback, report
    assert len(outcome.error_lines) == 1, report
    prefix = 'mmfusion: error: ' if case.status == 1 else osp.basename(matrix.TOOLS[case.tool])
    assert outcome.error_lines[0].startswith(prefix), report
    # nothing follows the error but its own table (a checkpoint that does not fit)
    first, *rest = outcome.message.split('\n')
    assert all(line[:1] in '+|' for line in rest), report
    for name in case.names:
        assert name in first, f'{name!r} not named; {report}'
    assert outcome.results == [], f'result files written: {outcome.results}; {report}'


def test_the_docs_table_is_the_current_output(run):
    _, outcomes = run
    docs = open(osp.join(REPO_ROOT, 'docs', 'reliability.md'), encoding='utf-8').read()
    assert SECTION in docs
    section = docs.split(SECTION, 1)[1].split('\n## ', 1)[0]
    table = [line for line in section.splitlines() if line.startswith('|')]
    assert table == matrix.markdown(outcomes).splitlines(), (
        'docs/reliability.md is out of date; regenerate its table with '
        'python tools/misc/tool_error_matrix.py')
