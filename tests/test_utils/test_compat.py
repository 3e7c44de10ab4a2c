"""mmfusion/utils/compat.py: importing mmfusion leaves transformers unimported
(mmengine's Adafactor registration deferred), and Adafactor still builds."""
import subprocess
import sys

import pytest

SNIPPET = r'''
import sys
import mmfusion.apis  # noqa: F401
import mmengine.optim  # noqa: F401
print('transformers' in sys.modules, 'peft' in sys.modules)
import torch
from mmengine.optim import build_optim_wrapper
model = torch.nn.Linear(3, 2)
wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='Adafactor', lr=1e-3,
                                                         relative_step=False)))
print(type(wrapper.optimizer).__module__)
'''


def test_import_defers_transformers_and_adafactor_still_builds():
    pytest.importorskip('transformers')
    proc = subprocess.run([sys.executable, '-c', SNIPPET], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == 'False False'  # nothing imported transformers or peft
    assert lines[-1] == 'transformers.optimization'  # built on request
