import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmfusion.structures import MultiModalDataSample


def test_labels_are_normalised_to_long_tensors():
    sample = MultiModalDataSample()
    sample.gt_label = 3
    assert torch.equal(sample.gt_label, torch.tensor([3]))
    sample.gt_label = np.array([1, 4])
    assert sample.gt_label.dtype == torch.long and sample.gt_label.tolist() == [1, 4]
    sample.pred_label = [2]
    assert sample.pred_label.tolist() == [2]
    with pytest.raises(TypeError, match='label'):
        sample.gt_label = 'cat'
    with pytest.raises(ValueError, match='1-D'):
        sample.gt_label = torch.zeros(2, 2)


def test_vqa_fields_and_meta_travel_in_to_dict():
    sample = MultiModalDataSample(metainfo=dict(question='what color?', question_id=7))
    sample.gt_answers = ['red'] * 10
    sample.pred_answer = 'red'
    out = sample.to_dict()
    assert out['question'] == 'what color?' and out['gt_answers'] == ['red'] * 10
    assert out['pred_answer'] == 'red'
    with pytest.raises(TypeError, match='gt_answers'):
        sample.gt_answers = 'red'


def test_dense_fields_are_typed():
    sample = MultiModalDataSample()
    sample.gt_instances = InstanceData(bboxes=torch.zeros(2, 4), labels=torch.tensor([0, 1]))
    assert len(sample.gt_instances) == 2
    with pytest.raises(AssertionError):
        sample.gt_instances = {'bboxes': []}
