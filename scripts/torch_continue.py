"""Continue a run of this trainer on a real cluster: PyTorch DDP or FSDP under torchrun.

Export the run as a Hugging Face folder, train it further here, and bring it back:

    npm run cli -- convert my-run.ckpt my-gpt2            # or --save my-gpt2 at the end of a run
    torchrun --nproc_per_node=8 scripts/torch_continue.py my-gpt2 input.txt --steps 1000 --out my-gpt2-more
    npm run cli -- train --init my-gpt2-more ...           # or: convert my-gpt2-more more.bin (llm.c)

It needs torch and transformers (pip install torch transformers), which this repository's machines do not
have: it is not run by the tests. What the tests check instead is the export it starts from
(scripts/numpy_gpt2.py computes the same logits as llm.c from the folder). The data are split and
sampled as nanoGPT does (random windows of block_size tokens); the tokenizer is the folder's
char_vocab.json (token i is its i-th character) or GPT-2's BPE.
"""
import argparse
import json
import os

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.nn.parallel import DistributedDataParallel as DDP
from transformers import GPT2LMHeadModel, GPT2TokenizerFast

p = argparse.ArgumentParser()
p.add_argument('model', help='a Hugging Face GPT-2 folder (model.safetensors, config.json)')
p.add_argument('data', help='the training text')
p.add_argument('--steps', type=int, default=1000)
p.add_argument('--batch', type=int, default=12, help='sequences per GPU')
p.add_argument('--lr', type=float, default=1e-4)
p.add_argument('--fsdp', action='store_true', help='FULL_SHARD instead of DDP')
p.add_argument('--out', required=True, help='where to save the model (a folder this trainer reads back)')
args = p.parse_args()

dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device(f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}' if torch.cuda.is_available() else 'cpu')

text = open(args.data, encoding='utf-8').read()
vocab_file = os.path.join(args.model, 'char_vocab.json')
if os.path.exists(vocab_file):
    chars = json.load(open(vocab_file, encoding='utf-8'))['chars']
    index = {c: i for i, c in enumerate(chars)}
    tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
else:
    tokens = torch.tensor(GPT2TokenizerFast.from_pretrained('gpt2')(text)['input_ids'], dtype=torch.long)

model = GPT2LMHeadModel.from_pretrained(args.model).to(device)  # lm_head tied to wte, as exported
T = model.config.n_positions
model = FSDP(model) if args.fsdp else DDP(model, device_ids=[device.index] if device.type == 'cuda' else None)
opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.1)
gen = torch.Generator().manual_seed(1337 + rank)  # each rank its own windows

for step in range(args.steps):
    starts = torch.randint(len(tokens) - T - 1, (args.batch,), generator=gen)
    x = torch.stack([tokens[s:s + T] for s in starts]).to(device)
    loss = model(input_ids=x, labels=x).loss  # transformers shifts the labels by one
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if rank == 0 and step % 100 == 0:
        print(f'step {step}: loss {loss.item():.4f}')

if args.fsdp:  # the full state dict, gathered on rank 0
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
        state = model.state_dict()
    inner = model.module
else:
    state, inner = model.module.state_dict(), model.module
if rank == 0:
    inner.save_pretrained(args.out, state_dict=state, safe_serialization=True)  # model.safetensors + config.json
    if os.path.exists(vocab_file):
        with open(os.path.join(args.out, 'char_vocab.json'), 'w', encoding='utf-8') as f:
            json.dump({'chars': chars}, f)
dist.destroy_process_group()
