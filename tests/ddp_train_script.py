"""Run by tests/test_train.py under `torchrun --nproc_per_node 2`: a few DDP steps of a tiny model on CPU.

    torchrun --standalone --nproc_per_node 2 tests/ddp_train_script.py OUT_DIR

Every process writes OUT_DIR/rank{r}.pt with its final weights, the first batch it trained on
and its loss history, so the test can check that the processes agree where they must and
differ where they should.
"""

import os
import sys

import torch

torch.set_num_threads(1)

import minigpt as mg  # noqa: E402
import minigpt.train as train_module  # noqa: E402


def main(out_dir: str) -> None:
    rank = int(os.environ["RANK"])
    # Different initial weights on purpose: DDP must start every process from rank 0's.
    torch.manual_seed(100 + rank)
    model = mg.GPT(mg.GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1))
    ids = torch.arange(4000) % 16

    batches = []
    real_get_batch = train_module.get_batch

    def recording_get_batch(*args, **kwargs):
        x, y = real_get_batch(*args, **kwargs)
        batches.append(x.clone())
        return x, y

    train_module.get_batch = recording_get_batch
    config = mg.TrainConfig(max_iters=4, batch_size=4, grad_accum_steps=2, warmup_iters=1, eval_interval=2,
                            eval_iters=2, out_dir=out_dir, device="cpu", progress=False, seed=0)
    trainer = mg.Trainer(model, ids, ids, config)
    trainer.fit()
    assert not torch.distributed.is_initialized(), "fit() should leave the process group it joined"
    torch.save({"state_dict": model.state_dict(), "first_batch": batches[0], "history": trainer.history,
                "world_size": trainer.world_size}, os.path.join(out_dir, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
