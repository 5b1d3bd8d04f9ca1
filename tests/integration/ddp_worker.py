"""Run by torchrun in test_resume_and_ddp: train, then each rank saves the weights it holds."""

import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from imgclf.api import train_run
from imgclf.config import load_config, parse_set

if __name__ == "__main__":
    out = Path(sys.argv[1])
    cfg = load_config(None, parse_set(sys.argv[2:]))
    captured = {}

    import imgclf.engine as E

    original_fit = E.Trainer.fit

    def fit_and_capture(self):  # record this rank's weights right after training
        state = original_fit(self)
        captured.update({k: v.detach().clone().contiguous() for k, v in state.raw_model.state_dict().items()})
        captured["__rank"] = __import__("torch").tensor(state.dist.rank)
        return state

    E.Trainer.fit = fit_and_capture
    train_run(cfg)
    save_file(captured, str(out / f"rank{int(captured.pop('__rank'))}.safetensors"))
    assert not dist.is_initialized()
