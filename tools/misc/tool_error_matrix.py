"""Run every tool against every bad input that applies to it; print the errors as a table.

    python tools/misc/tool_error_matrix.py > /tmp/matrix.md

The inputs are built in a temporary folder (shown as ``tmp/`` in the
messages): a small MMShapes copy and two broken copies of it (annotation
files cut in half; one image per split deleted), a real checkpoint of the VQA
quick-start trained for one epoch on the small copy (tested against the
audio-visual classification config, whose model it does not fit), a
truncated checkpoint and a text file named ``.pth``, configs with a syntax
error, an unknown component or a modality the model does not take, the
training log and a results pickle of ``tools/test.py --out``, each also cut
short. Every case runs the real tool as a subprocess, in an empty folder of
its own, and records its exit status, its error message and the result-like
files it left there (checkpoints, images, pickles, metrics).

``docs/reliability.md`` ("Every tool, every bad input") is this script's
output, and ``tests/test_tools/test_tool_error_matrix.py`` checks every row
and that the table is still what the tools print.
"""
import argparse
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, NamedTuple, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL_MMSHAPES = dict(num_train=48, num_val=16, img_size=64, seed=0)
SHOWN_ROOT = 'tmp'  # how the temporary folder appears in the messages

# the tools, in table order: name -> script
TOOLS = {
    'train': 'tools/train.py',
    'test': 'tools/test.py',
    'infer': 'tools/infer.py',
    'browse_dataset': 'tools/misc/browse_dataset.py',
    'print_config': 'tools/misc/print_config.py',
    'convert_checkpoint': 'tools/misc/convert_checkpoint.py',
    'make_mmshapes': 'tools/dataset_converters/make_mmshapes.py',
    'benchmark': 'tools/analysis_tools/benchmark.py',
    'fusion_benchmark': 'tools/analysis_tools/fusion_benchmark.py',
    'get_flops': 'tools/analysis_tools/get_flops.py',
    'analyze_logs': 'tools/analysis_tools/analyze_logs.py',
    'confusion_matrix': 'tools/analysis_tools/confusion_matrix.py',
    'analyze_results': 'tools/analysis_tools/analyze_results.py',
}

# the kinds of bad input, in table order
BAD_INPUTS = (
    'missing config',
    'config with a syntax error',
    'config naming an unknown component',
    'checkpoint of another model',
    'missing checkpoint',
    'truncated checkpoint',
    'text file as checkpoint',
    'corrupt data file',
    'missing data file',
    'wrong modality',
    'bad option value',
)

# files that would be a result: a checkpoint, a drawing, predictions, metrics
RESULT_SUFFIXES = ('.pth', '.png', '.jpg', '.pkl', '.pickle')
RESULT_NAMES = ('metrics.json', 'confusion_matrix.json', 'last_checkpoint', 'results.md',
                'flops.json', 'meta.json')

# variables a launcher reads, removed so that the tools run as a single process
LAUNCH_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
               'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST', 'SLURM_LOCALID',
               'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK',
               'OMPI_COMM_WORLD_LOCAL_SIZE', 'PMI_RANK', 'PMI_SIZE', 'MPI_LOCALRANKID',
               'MMFUSION_TRACEBACK')


class Case(NamedTuple):
    """One tool run on one bad input."""
    tool: str  # a key of TOOLS
    bad: str  # one of BAD_INPUTS
    detail: str  # the input itself, for the table
    args: List[str]  # the tool's arguments
    names: List[str]  # what the message must contain (paths shortened)
    status: int = 1  # 2: argparse's usage error
    known_bug: str = ''  # why the tool fails this case today; the test expects it to fail


class Outcome(NamedTuple):
    """What a run of a case did."""
    case: Case
    status: int
    error_lines: List[str]  # stderr lines that start an error ('<prog>: error: ...')
    message: str  # the error, paths shortened; continuation lines (a table) joined by \n
    traceback: bool  # 'Traceback' appears in stdout or stderr
    results: List[str]  # result-like files left in the case's folder
    stderr_tail: str  # for failure reports
    seconds: float  # how long the tool ran


# ---------------------------------------------------------------------------
# Building the inputs


class Inputs:
    """Paths of the inputs under the temporary folder ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        j = lambda *parts: osp.join(root, *parts)  # noqa: E731
        self.data = j('data', 'mmshapes')
        self.data_cut = j('data', 'mmshapes_cut')
        self.data_noimg = j('data', 'mmshapes_noimg')
        self.work = j('work', 'vqa')
        self.ckpt = j('work', 'vqa', 'epoch_1.pth')
        self.ckpt_missing = j('ckpt', 'missing.pth')
        self.ckpt_truncated = j('ckpt', 'truncated.pth')
        self.ckpt_text = j('ckpt', 'notes.pth')
        self.cfg_missing = j('configs', 'no_such_config.py')
        self.cfg_syntax = j('configs', 'syntax_error.py')
        self.cfg_unknown = j('configs', 'unknown_fusion.py')
        self.cfg_unknown_transform = j('configs', 'unknown_transform.py')
        self.cfg_no_audio_encoder = j('configs', 'av_without_audio_encoder.py')
        self.log = j('logs', 'scalars.json')
        self.log_cut = j('logs', 'scalars_cut.json')
        self.log_missing = j('logs', 'missing.json')
        self.results = j('results', 'vqa.pkl')
        self.results_cut = j('results', 'vqa_cut.pkl')
        self.results_json = j('results', 'vqa.json')
        self.results_missing = j('results', 'missing.pkl')
        self.image = j('data', 'mmshapes', 'images', 'val', '1000001.png')
        self.audio = j('data', 'mmshapes', 'audio', 'val', '1000001.wav')
        self.image_half = j('inputs', 'half.png')
        self.image_missing = j('inputs', 'missing.png')
        self.mmshapes_meta_cut = j('inputs', 'mmshapes_meta_cut')
        self.not_a_folder = j('inputs', 'plain_file')


def repo(path: str) -> str:
    return osp.join(REPO_ROOT, path)


VQA = repo('configs/vqa/mmshapes_vqa.py')
AV = repo('configs/classification/mmshapes_av.py')
AV_AUDIO_ONLY = repo('configs/classification/mmshapes_av_audio_only.py')


def tool_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1',
               MPLBACKEND='Agg')
    return env


def run_tool(args: Sequence[str], cwd: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=tool_env())


def check_ok(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f'{what} failed ({proc.returncode}):\n{proc.stderr[-3000:]}')


def cut_in_half(src: str, dst: Optional[str] = None) -> None:
    with open(src, 'rb') as f:
        data = f.read()
    with open(dst or src, 'wb') as f:
        f.write(data[:len(data) // 2])


def write(path: str, text: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def build_inputs(root: str) -> Inputs:
    """Make every input under ``root``: data, a trained checkpoint, broken files."""
    p = Inputs(root)
    check_ok(run_tool([repo(TOOLS['make_mmshapes']), '--out-dir', p.data,
                       *[f'--{k.replace("_", "-")}={v}' for k, v in SMALL_MMSHAPES.items()]],
                      cwd=root), 'generating MMShapes')

    # the VQA quick-start, one epoch on the small copy: a real checkpoint and log
    os.makedirs(p.work, exist_ok=True)
    check_ok(run_tool([repo('tools/train.py'), VQA, '--data-root', p.data, '--work-dir', p.work,
                       '--cfg-options', 'train_cfg.max_epochs=1',
                       'train_dataloader.batch_size=16', 'val_dataloader.batch_size=16'],
                      cwd=root), 'training the VQA quick-start')
    # its predictions, as tools/test.py --out writes them; proves the good path writes results
    test_dir = osp.join(root, 'work', 'vqa_test')
    check_ok(run_tool([repo('tools/test.py'), VQA, p.ckpt, '--data-root', p.data,
                       '--work-dir', test_dir, '--out', p.results,
                       '--cfg-options', 'test_dataloader.batch_size=16'], cwd=root),
             'testing the VQA checkpoint')
    if not (osp.isfile(p.results) and osp.isfile(osp.join(test_dir, 'metrics.json'))):
        raise RuntimeError('tools/test.py wrote no metrics.json or predictions')

    # the data, broken two ways
    shutil.copytree(p.data, p.data_cut)
    for name in ('vqa/v2_mmshapes_train_annotations.json', 'vqa/v2_mmshapes_val_annotations.json'):
        cut_in_half(osp.join(p.data_cut, name))
    shutil.copytree(p.data, p.data_noimg)
    for split in ('train', 'val'):
        folder = osp.join(p.data_noimg, 'images', split)
        os.remove(osp.join(folder, sorted(os.listdir(folder))[0]))
    os.makedirs(osp.dirname(p.image_half))
    cut_in_half(p.image, p.image_half)
    shutil.copytree(p.data, p.mmshapes_meta_cut,
                    ignore=lambda folder, names: [n for n in names if n != 'meta.json'])
    cut_in_half(osp.join(p.mmshapes_meta_cut, 'meta.json'))
    write(p.not_a_folder, 'a file where a folder is expected\n')

    # checkpoints: truncated at a fixed size, and a text file
    os.makedirs(osp.dirname(p.ckpt_truncated))
    with open(p.ckpt, 'rb') as f:
        head = f.read(100_000)
    with open(p.ckpt_truncated, 'wb') as f:
        f.write(head)
    write(p.ckpt_text, 'these are my notes, not a checkpoint\n' * 4)

    # configs
    write(p.cfg_syntax, f"_base_ = ['{VQA}']\n\nmodel = dict(fusion=dict(out_dim=256)\n")
    write(p.cfg_unknown, f"_base_ = ['{VQA}']\n\nmodel = dict(fusion=dict(type='MLBFuson'))\n")
    write(p.cfg_unknown_transform,
          f"_base_ = ['{VQA}']\n\ntrain_dataloader = dict(dataset=dict(pipeline=[\n"
          "    dict(type='LoadImageFromFlie'),\n"
          "    dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question')),\n"
          ']))\n')
    # the pipelines pack image and audio; the model encodes the image only
    write(p.cfg_no_audio_encoder,
          f"_base_ = ['{AV}']\n\nmodel = dict(encoders=dict(audio=None))\n")

    # the training log and the predictions, whole and cut in half
    logs = [osp.join(dirpath, 'scalars.json') for dirpath, _, files in os.walk(p.work)
            if 'scalars.json' in files]
    os.makedirs(osp.dirname(p.log))
    shutil.copy(logs[0], p.log)
    # the first record whole, the second cut after its opening '{"': the same error every run
    with open(p.log, encoding='utf-8') as f:
        first, second = f.readlines()[:2]
    write(p.log_cut, first + second[:2])
    cut_in_half(p.results, p.results_cut)
    shutil.copy(p.log, p.results_json)  # a JSON file where the predictions pickle goes
    return p


# ---------------------------------------------------------------------------
# The cases


def cases(p: Inputs) -> List[Case]:
    """Every (tool, bad input) that applies, with what the message must name."""
    data = ['--data-root', p.data]
    shots = ['--not-show', '--output-dir', 'shots', '--max-samples', '2']
    bench = ['--iters', '2', '--warmup', '1']
    fb = ['--work-dir', 'work', '--out', 'results.md', '--cfg-options',
          f'train_dataloader.dataset.data_root={p.data}',
          f'val_dataloader.dataset.data_root={p.data}', 'train_cfg.max_epochs=1',
          'train_dataloader.batch_size=16', 'val_dataloader.batch_size=16']
    flops = ['--json-out', 'flops.json']
    ask = ['--image', p.image, '--question', 'what color is the circle?']
    av_inputs = ['--image', p.image, '--audio', p.audio]

    def s(path: str) -> str:  # a path as the messages show it
        return shorten(path, p.root)

    missing_cfg = [f'config file not found: {s(p.cfg_missing)}']
    syntax = [f'{s(p.cfg_syntax)}, line 3: invalid Python syntax']
    unknown = ['model.fusion.type', "'MLBFuson'", "Did you mean 'MLBFusion'?"]
    mismatch = [f'checkpoint {s(p.ckpt)} does not fit the model', 'mmshapes_av.py']
    truncated = [f'cannot read checkpoint {s(p.ckpt_truncated)}']
    text = [f'cannot read checkpoint {s(p.ckpt_text)}', 'not a PyTorch checkpoint']
    no_audio = ['model.encoders', "'audio' is packed but no encoder takes it"]
    vqa_ann = s(osp.join(p.data_cut, 'vqa', 'v2_mmshapes_train_annotations.json'))
    vqa_val_ann = s(osp.join(p.data_cut, 'vqa', 'v2_mmshapes_val_annotations.json'))
    gone_train = s(osp.join(p.data_noimg, 'images', 'train', '000001.png'))
    gone_val = s(osp.join(p.data_noimg, 'images', 'val', '1000001.png'))

    C = Case
    return [
        # tools/train.py
        C('train', 'missing config', 'no such file', [p.cfg_missing], missing_cfg),
        C('train', 'config with a syntax error', 'unclosed parenthesis', [p.cfg_syntax], syntax),
        C('train', 'config naming an unknown component', "model.fusion.type='MLBFuson'",
          [p.cfg_unknown, *data, '--work-dir', 'work'], unknown),
        C('train', 'checkpoint of another model', '--resume VQA checkpoint, AV config',
          [AV, *data, '--work-dir', 'work', '--resume', p.ckpt], mismatch),
        C('train', 'missing checkpoint', '--resume missing.pth',
          [VQA, *data, '--work-dir', 'work', '--resume', p.ckpt_missing],
          [s(p.ckpt_missing)]),
        C('train', 'truncated checkpoint', '--resume truncated.pth',
          [VQA, *data, '--work-dir', 'work', '--resume', p.ckpt_truncated], truncated),
        C('train', 'text file as checkpoint', '--resume notes.pth',
          [VQA, *data, '--work-dir', 'work', '--resume', p.ckpt_text], text),
        C('train', 'corrupt data file', 'annotation JSON cut in half',
          [VQA, '--data-root', p.data_cut, '--work-dir', 'work'], [vqa_ann]),
        C('train', 'missing data file', 'a training image deleted',
          [VQA, '--data-root', p.data_noimg, '--work-dir', 'work'], [gone_train]),
        C('train', 'wrong modality', 'pipeline packs audio, model has no audio encoder',
          [p.cfg_no_audio_encoder, *data, '--work-dir', 'work'], no_audio),
        C('train', 'bad option value', '--launcher foo',
          [VQA, '--launcher', 'foo'], ['--launcher', "invalid choice: 'foo'"], 2),
        # tools/test.py
        C('test', 'missing config', 'no such file', [p.cfg_missing, p.ckpt], missing_cfg),
        C('test', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax, p.ckpt], syntax),
        C('test', 'config naming an unknown component', "model.fusion.type='MLBFuson'",
          [p.cfg_unknown, p.ckpt, *data, '--work-dir', 'work'], unknown),
        C('test', 'checkpoint of another model', 'VQA checkpoint, AV config',
          [AV, p.ckpt, *data, '--work-dir', 'work'], mismatch),
        C('test', 'missing checkpoint', 'missing.pth',
          [VQA, p.ckpt_missing, *data, '--work-dir', 'work'],
          [f'checkpoint not found: {s(p.ckpt_missing)}']),
        C('test', 'truncated checkpoint', 'truncated.pth',
          [VQA, p.ckpt_truncated, *data, '--work-dir', 'work'], truncated),
        C('test', 'text file as checkpoint', 'notes.pth',
          [VQA, p.ckpt_text, *data, '--work-dir', 'work'], text),
        C('test', 'corrupt data file', 'annotation JSON cut in half',
          [VQA, p.ckpt, '--data-root', p.data_cut, '--work-dir', 'work'], [vqa_val_ann]),
        C('test', 'missing data file', 'a test image deleted',
          [VQA, p.ckpt, '--data-root', p.data_noimg, '--work-dir', 'work'], [gone_val]),
        C('test', 'wrong modality', 'pipeline packs audio, model has no audio encoder',
          [p.cfg_no_audio_encoder, p.ckpt, *data, '--work-dir', 'work'], no_audio),
        C('test', 'bad option value', '--out results.json',
          [VQA, p.ckpt, '--work-dir', 'work', '--out', 'results.json'],
          ['--out', "'results.json'", '.pkl'], 2),
        # tools/infer.py
        C('infer', 'missing config', 'no such file', [p.cfg_missing, p.ckpt, *ask], missing_cfg),
        C('infer', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax, p.ckpt, *ask], syntax),
        C('infer', 'config naming an unknown component', "model.fusion.type='MLBFuson'",
          [p.cfg_unknown, p.ckpt, *ask], unknown),
        C('infer', 'checkpoint of another model', 'VQA checkpoint, AV config',
          [AV, p.ckpt, *av_inputs], mismatch),
        C('infer', 'missing checkpoint', 'missing.pth', [VQA, p.ckpt_missing, *ask],
          [s(p.ckpt_missing)]),
        C('infer', 'truncated checkpoint', 'truncated.pth', [VQA, p.ckpt_truncated, *ask],
          truncated),
        C('infer', 'text file as checkpoint', 'notes.pth', [VQA, p.ckpt_text, *ask], text),
        C('infer', 'corrupt data file', '--image: a PNG cut in half',
          [VQA, p.ckpt, '--image', p.image_half, '--question', 'what color?'],
          [s(p.image_half)]),
        C('infer', 'missing data file', '--image: no such file',
          [VQA, p.ckpt, '--image', p.image_missing, '--question', 'what color?'],
          [s(p.image_missing)]),
        C('infer', 'wrong modality', '--audio for a VQA model',
          [VQA, p.ckpt, *ask, '--audio', p.audio], ['takes image and text, not audio',
                                                     'drop --audio']),
        C('infer', 'bad option value', '--device nonsense',
          [VQA, p.ckpt, *ask, '--device', 'nonsense'], ['--device', "'nonsense'"], 2),
        # tools/misc/browse_dataset.py
        C('browse_dataset', 'missing config', 'no such file', [p.cfg_missing, *shots],
          missing_cfg),
        C('browse_dataset', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax, *shots], syntax),
        C('browse_dataset', 'config naming an unknown component',
          "pipeline type='LoadImageFromFlie'", [p.cfg_unknown_transform, *data, *shots],
          ['train_dataloader.dataset.pipeline[0].type', "'LoadImageFromFile'"]),
        C('browse_dataset', 'corrupt data file', 'annotation JSON cut in half',
          [VQA, '--data-root', p.data_cut, *shots], [vqa_ann]),
        C('browse_dataset', 'missing data file', 'a training image deleted',
          [VQA, '--data-root', p.data_noimg, *shots], [gone_train]),
        C('browse_dataset', 'wrong modality', 'an audio-only config (no image to draw)',
          [AV_AUDIO_ONLY, *data, *shots], ['packs no image']),
        C('browse_dataset', 'bad option value', '--max-samples -1',
          [VQA, '--not-show', '--output-dir', 'shots', '--max-samples', '-1'],
          ['--max-samples', '-1'], 2),
        # tools/misc/print_config.py
        C('print_config', 'missing config', 'no such file', [p.cfg_missing], missing_cfg),
        C('print_config', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax], syntax),
        C('print_config', 'bad option value', '--cfg-options data_root=/elsewhere',
          [VQA, '--cfg-options', 'data_root=/elsewhere'],
          ['--cfg-options data_root=/elsewhere changes nothing', '--data-root']),
        # tools/misc/convert_checkpoint.py
        C('convert_checkpoint', 'missing checkpoint', 'missing.pth',
          [p.ckpt_missing, 'converted.pth', '--trusted'], [s(p.ckpt_missing)]),
        C('convert_checkpoint', 'truncated checkpoint', 'truncated.pth',
          [p.ckpt_truncated, 'converted.pth', '--trusted'], [s(p.ckpt_truncated)]),
        C('convert_checkpoint', 'text file as checkpoint', 'notes.pth',
          [p.ckpt_text, 'converted.pth', '--trusted'], [s(p.ckpt_text)]),
        C('convert_checkpoint', 'bad option value', 'output path under a file, not a folder',
          [p.ckpt, osp.join(p.not_a_folder, 'converted.pth'), '--trusted'],
          [s(osp.join(p.not_a_folder, 'converted.pth'))]),
        # tools/dataset_converters/make_mmshapes.py
        C('make_mmshapes', 'corrupt data file', 'existing copy with meta.json cut in half',
          ['--out-dir', p.mmshapes_meta_cut],
          [s(osp.join(p.mmshapes_meta_cut, 'meta.json'))]),
        C('make_mmshapes', 'bad option value', '--num-train -5',
          ['--out-dir', 'mmshapes', '--num-train', '-5'], ['--num-train', '-5'], 2),
        # tools/analysis_tools/benchmark.py
        C('benchmark', 'missing config', 'no such file', [p.cfg_missing, *bench], missing_cfg),
        C('benchmark', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax, *bench], syntax),
        C('benchmark', 'config naming an unknown component', "model.fusion.type='MLBFuson'",
          [p.cfg_unknown, *data, *bench], unknown),
        C('benchmark', 'corrupt data file', 'annotation JSON cut in half',
          [VQA, '--data-root', p.data_cut, *bench], [vqa_ann]),
        C('benchmark', 'missing data file', 'a training image deleted',
          [VQA, '--data-root', p.data_noimg, *bench], [gone_train]),
        C('benchmark', 'wrong modality', 'pipeline packs audio, model has no audio encoder',
          [p.cfg_no_audio_encoder, *data, *bench], no_audio),
        C('benchmark', 'bad option value', '--iters -5',
          [VQA, *data, '--iters', '-5'], ['--iters', '-5'], 2),
        # tools/analysis_tools/fusion_benchmark.py
        C('fusion_benchmark', 'missing config', 'no such file',
          ['--configs', p.cfg_missing, *fb], missing_cfg),
        C('fusion_benchmark', 'config with a syntax error', 'unclosed parenthesis',
          ['--configs', p.cfg_syntax, *fb], syntax),
        C('fusion_benchmark', 'config naming an unknown component',
          "model.fusion.type='MLBFuson'", ['--configs', p.cfg_unknown, *fb], unknown),
        C('fusion_benchmark', 'wrong modality',
          'pipeline packs audio, model has no audio encoder',
          ['--configs', p.cfg_no_audio_encoder, *fb], no_audio),
        C('fusion_benchmark', 'bad option value', '--metric accuracy/top5 (not reported)',
          ['--configs', AV, *fb, '--metric', 'accuracy/top5'],
          ['--metric accuracy/top5', 'accuracy/top1']),
        # tools/analysis_tools/get_flops.py
        C('get_flops', 'missing config', 'no such file', [p.cfg_missing, *flops], missing_cfg),
        C('get_flops', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax, *flops], syntax),
        C('get_flops', 'config naming an unknown component', "model.fusion.type='MLBFuson'",
          [p.cfg_unknown, *data, *flops], unknown),
        C('get_flops', 'corrupt data file', 'annotation JSON cut in half',
          [VQA, '--data-root', p.data_cut, *flops], [vqa_ann]),
        C('get_flops', 'missing data file', 'a training image deleted',
          [VQA, '--data-root', p.data_noimg, *flops], [gone_train]),
        C('get_flops', 'wrong modality', 'pipeline packs audio, model has no audio encoder',
          [p.cfg_no_audio_encoder, *data, *flops], no_audio),
        C('get_flops', 'bad option value', '--batch-size 0',
          [VQA, *data, *flops, '--batch-size', '0'], ['--batch-size', '0'], 2),
        # tools/analysis_tools/analyze_logs.py
        C('analyze_logs', 'corrupt data file', 'scalars.json cut inside a record',
          ['plot_curve', p.log_cut, '--out', 'curves.png'], [s(p.log_cut)]),
        C('analyze_logs', 'missing data file', 'no such log',
          ['plot_curve', p.log_missing, '--out', 'curves.png'], [s(p.log_missing)]),
        C('analyze_logs', 'bad option value', '--keys lost (no such key)',
          ['plot_curve', p.log, '--keys', 'lost', '--out', 'curves.png'],
          [s(p.log), "'lost'"]),
        C('analyze_logs', 'bad option value', '--out curves.txt (not an image format)',
          ['plot_curve', p.log, '--out', 'curves.txt'], ['curves.txt']),
        # tools/analysis_tools/confusion_matrix.py
        C('confusion_matrix', 'missing config', 'no such file',
          [p.cfg_missing, p.results, '--out', 'cm'], missing_cfg),
        C('confusion_matrix', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax, p.results, '--out', 'cm'], syntax),
        C('confusion_matrix', 'corrupt data file', 'results pickle cut in half',
          [VQA, p.results_cut, '--out', 'cm'], [s(p.results_cut), 'not a results pickle']),
        C('confusion_matrix', 'missing data file', 'no such results file',
          [VQA, p.results_missing, '--out', 'cm'], [s(p.results_missing)]),
        C('confusion_matrix', 'bad option value', 'results file with the wrong extension (.json)',
          [VQA, p.results_json, '--out', 'cm'], [s(p.results_json)]),
        # tools/analysis_tools/analyze_results.py
        C('analyze_results', 'missing config', 'no such file',
          [p.cfg_missing, p.results, '--out-dir', 'shots'], missing_cfg),
        C('analyze_results', 'config with a syntax error', 'unclosed parenthesis',
          [p.cfg_syntax, p.results, '--out-dir', 'shots'], syntax),
        C('analyze_results', 'corrupt data file', 'results pickle cut in half',
          [VQA, p.results_cut, '--out-dir', 'shots'],
          [s(p.results_cut), 'not a results pickle']),
        C('analyze_results', 'missing data file', 'no such results file',
          [VQA, p.results_missing, '--out-dir', 'shots'], [s(p.results_missing)]),
        C('analyze_results', 'bad option value', '--topk 0',
          [VQA, p.results, '--out-dir', 'shots', '--topk', '0'], ['--topk', '0'], 2),
    ]


# ---------------------------------------------------------------------------
# Running and reporting


def shorten(text: str, root: str) -> str:
    """The temporary folder as ``tmp``, files of the repository relative to it."""
    for folder in {root, osp.realpath(root)}:
        text = text.replace(folder, SHOWN_ROOT)
    return text.replace(REPO_ROOT + os.sep, '')


ERROR_LINE = re.compile(r'^[\w.-]+: error: ')


def result_files(folder: str) -> List[str]:
    found = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name.endswith(RESULT_SUFFIXES) or name in RESULT_NAMES:
                found.append(osp.relpath(osp.join(dirpath, name), folder))
    return sorted(found)


def run_case(case: Case, p: Inputs, index: int, timeout: int = 600) -> Outcome:
    """Run ``case`` in an empty folder of its own and record what it did."""
    cwd = osp.join(p.root, 'runs', f'{index:03d}_{case.tool}')
    os.makedirs(cwd)
    start = time.time()
    proc = run_tool([repo(TOOLS[case.tool]), *case.args], cwd=cwd, timeout=timeout)
    seconds = time.time() - start
    lines = proc.stderr.rstrip('\n').splitlines()
    starts = [i for i, line in enumerate(lines) if ERROR_LINE.match(line)]
    message = ''
    if starts:
        first = lines[starts[-1]]
        rest = lines[starts[-1] + 1:]
        message = shorten('\n'.join([first[first.index(': error: ') + 9:], *rest]), p.root)
    return Outcome(case=case, status=proc.returncode,
                   error_lines=[lines[i] for i in starts], message=message,
                   traceback='Traceback' in proc.stderr or 'Traceback' in proc.stdout,
                   results=result_files(cwd), stderr_tail=shorten(proc.stderr[-3000:], p.root),
                   seconds=seconds)


def collect(root: str, workers: int = 2) -> List[Outcome]:
    """Build the inputs under ``root`` and run every case; outcomes in table order."""
    p = build_inputs(root)
    todo = cases(p)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: run_case(item[1], p, item[0]), enumerate(todo)))


def problems(outcome: Outcome) -> List[str]:
    """What is wrong with an outcome: empty when the tool failed as it should."""
    case, found = outcome.case, []
    if outcome.status != case.status:
        found.append(f'exit status {outcome.status}, expected {case.status}')
    if outcome.traceback:
        found.append('a traceback was printed')
    prefix = 'mmfusion: error: ' if case.status == 1 else ''
    if len(outcome.error_lines) != 1 or not outcome.error_lines[0].startswith(prefix):
        found.append(f'expected one {prefix or "<prog>: error: "}line, got '
                     f'{outcome.error_lines}')
    for name in case.names:
        if name not in outcome.message:
            found.append(f'the message does not name {name!r}')
    if outcome.results:
        found.append(f'result files were written: {outcome.results}')
    return found


def markdown(outcomes: Sequence[Outcome]) -> str:
    lines = ['| Tool | Bad input | Exit | Message |', '|---|---|---|---|']
    for o in outcomes:
        first, *rest = o.message.split('\n') if o.message else ['']
        shown = first + (f' (then a {len(rest)}-line table)' if rest else '')
        if o.case.known_bug:
            shown = f'**known bug**: {o.case.known_bug}'
        shown = shown.replace('|', '\\|')
        lines.append(f'| {o.case.tool} | {o.case.bad}: {o.case.detail} | {o.status} | '
                     f'{shown} |')
    return '\n'.join(lines)


def summary(outcomes: Sequence[Outcome]) -> str:
    tools = {o.case.tool for o in outcomes}
    kinds = {o.case.bad for o in outcomes}
    bugs = sum(1 for o in outcomes if o.case.known_bug)
    return (f'{len(tools)} tools x {len(kinds)} kinds of bad input: {len(outcomes)} cases '
            f'that apply, {bugs} of them known bugs')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workers', type=int, default=2,
                        help='cases run at once (default: 2)')
    parser.add_argument('--keep', metavar='DIR',
                        help='build the inputs in DIR (must not exist) and keep them')
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f'--workers must be at least 1, got {args.workers}')
    start = time.time()
    if args.keep:
        os.makedirs(args.keep)
        outcomes = collect(osp.abspath(args.keep), args.workers)
    else:
        with tempfile.TemporaryDirectory(prefix='tool_error_matrix_') as root:
            outcomes = collect(root, args.workers)
    sys.stdout.write(markdown(outcomes) + '\n')
    # a known bug must still fail; any other case must pass
    bad = [(o, problems(o) or ['passes: it is no longer a known bug'])
           for o in outcomes if bool(problems(o)) != bool(o.case.known_bug)]
    for o, found in bad:
        print(f'FAILED {o.case.tool} / {o.case.bad}: {"; ".join(found)}\n{o.stderr_tail}\n',
              file=sys.stderr)
    slowest = sorted(outcomes, key=lambda o: -o.seconds)[:5]
    print('slowest: ' + ', '.join(f'{o.case.tool} / {o.case.bad} {o.seconds:.0f} s'
                                  for o in slowest), file=sys.stderr)
    print(f'{summary(outcomes)}; {len(bad)} failed; {time.time() - start:.0f} s',
          file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
