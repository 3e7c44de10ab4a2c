"""Retrieval models through MultiModalInferencer and tools/infer.py: embeddings
of any tower's input, partial inputs routed to their towers, gallery ranking."""
import glob
import json
import os.path as osp

import pytest
import torch
from conftest import PYTHON, run_tool
from test_apis.tiny_checkpoints import tiny_checkpoint

CLIP = 'configs/retrieval/mmshapes_clip.py'
CAPTIONS = ['a red circle.', 'two blue squares and a green triangle.', 'a yellow square.']


@pytest.fixture(scope='module')
def clip(mmshapes_root, tmp_path_factory):
    from mmfusion.apis import MultiModalInferencer
    cfg, ckpt = tiny_checkpoint(CLIP, mmshapes_root, str(tmp_path_factory.mktemp('clip')))
    images = sorted(glob.glob(osp.join(mmshapes_root, 'images', 'val', '*.png')))[:4]
    return MultiModalInferencer(cfg, ckpt, device='cpu'), cfg, ckpt, images


def test_each_tower_embeds_only_what_an_input_holds(clip):
    inferencer, _, _, images = clip
    assert inferencer.task == 'retrieval'
    assert inferencer.metadata()['embed_dim'] == inferencer.model.embed_dim
    both = inferencer(dict(image=images[0], text=CAPTIONS[0]))[0]['embeddings']
    # one batch mixing image-only, text-only and complete inputs
    mixed = inferencer([dict(image=images[0]), dict(text=CAPTIONS[0]),
                        dict(image=images[0], text=CAPTIONS[0])])
    assert set(mixed[0]['embeddings']) == {'image'}
    assert set(mixed[1]['embeddings']) == {'text'}
    assert mixed[0]['embeddings']['image'] == pytest.approx(both['image'], abs=1e-5)
    assert mixed[1]['embeddings']['text'] == pytest.approx(both['text'], abs=1e-5)
    # the same vectors as the model's own text embedding, L2-normalised
    direct = inferencer.model.encode_texts([CAPTIONS[0]])[0]
    assert torch.tensor(both['text']) == pytest.approx(direct, abs=1e-5)
    assert torch.tensor(both['image']).norm().item() == pytest.approx(1.0, abs=1e-5)


def test_retrieve_ranks_the_gallery_by_cosine_similarity(clip):
    inferencer, _, _, images = clip
    gallery = [dict(image=p) for p in images]
    ranked = inferencer.retrieve([dict(text=c) for c in CAPTIONS], gallery, topk=3)
    image_emb = torch.tensor([r['embeddings']['image'] for r in inferencer(gallery)])
    for caption, result in zip(CAPTIONS, ranked):
        text_emb = torch.tensor(inferencer(dict(text=caption))[0]['embeddings']['text'])
        sims = image_emb @ text_emb
        assert result['indices'] == sims.argsort(descending=True)[:3].tolist()
        assert result['scores'] == pytest.approx(sims.sort(descending=True).values[:3].tolist(),
                                                 abs=1e-5)


def test_retrieve_refuses_inputs_it_cannot_rank(clip):
    from mmfusion.errors import DataError
    inferencer, _, _, images = clip
    with pytest.raises(DataError, match='exactly one modality'):
        inferencer.retrieve(dict(image=images[0], text='a'), [dict(image=images[1])])
    with pytest.raises(DataError, match="share the modality 'image'"):
        inferencer.retrieve(dict(image=images[0]), [dict(image=images[1])])
    with pytest.raises(DataError, match=r"unknown input 'audio'"):
        inferencer(dict(audio='x.wav'))
    with pytest.raises(DataError, match='missing input'):
        inferencer(dict())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_infer_tool_ranks_a_gallery_both_ways(clip, tmp_path):
    inferencer, cfg, ckpt, images = clip
    proc = run_tool([PYTHON, 'tools/infer.py', cfg, ckpt, '--text', CAPTIONS[1],
                     '--gallery', *images, '--topk', '2', '--json'])
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = inferencer.retrieve(dict(text=CAPTIONS[1]), [dict(image=p) for p in images],
                                   topk=2)[0]
    assert [hit['item']['image'] for hit in line['ranked']] == \
        [images[i] for i in expected['indices']]
    captions = tmp_path / 'captions.txt'
    captions.write_text('\n'.join(CAPTIONS) + '\n')
    proc = run_tool([PYTHON, 'tools/infer.py', cfg, ckpt, '--image', images[0],
                     '--gallery', str(captions), '--topk', '3'])
    assert f'query: {images[0]}' in proc.stdout
    assert sum(any(c in line for c in CAPTIONS) for line in proc.stdout.splitlines()) == 3
