"""GLPFT training (``umi train``): stage 1 fine-tunes one backbone on the samples of every role
mixed; stage 2 copies it per role and fine-tunes each copy on its own role's samples.

recipe.py   the recipe file (TOML): model, tokenizer, data, stage 1, stage 2 per role
data.py     samples -> token ids with the loss on target tokens only (``system: `` + input,
            target + ``</s>``, as the reference trained), length-bucketed batches
loop.py     one fine-tuning run: AdamW, cosine schedule, checkpoints, resume, progress bar
glpft.py    the two stages
"""
