"""The generic loop: interrupt-and-resume equals a straight run, NaN stop, schedule, run log."""

import math
import os
import signal

import pytest
import torch

from tests.support.engine_toy_run import ToyRun
from rsd_sci.engine.distributed import init_distributed
from rsd_sci.engine.loop import StageInterrupted, TrainingStopped, run_stage, set_lr, warmup_lr
from rsd_sci.engine.runlog import RunLog, read_log


@pytest.fixture
def one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    return init_distributed("cpu")


def _assert_same_state(a: ToyRun, b: ToyRun):
    for x, y in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(x, y)
    for key, value in a.ema.state_dict().items():
        assert torch.equal(value, b.ema.state_dict()[key])
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for index, slots in sa["state"].items():
        for name, value in slots.items():
            assert torch.equal(value, sb["state"][index][name]), name


def test_interrupt_and_resume_equals_a_straight_run(tmp_path, one_process):
    straight = ToyRun(one_process, checkpoint=tmp_path / "straight.pt")
    straight.run(20, checkpoint_every=5)

    logged = RunLog(tmp_path / "log.jsonl")
    first = ToyRun(one_process, checkpoint=tmp_path / "resumed.pt")
    inner_step = first.step

    def step_then_ctrl_c(step):
        metrics = inner_step(step)
        if step == 7:  # Ctrl-C during step 8 (0-based step 7)
            os.kill(os.getpid(), signal.SIGINT)
        return metrics

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(StageInterrupted, match="at step 8 of 20.*resume with the same command") as info:
        run_stage(step_fn=step_then_ctrl_c, total_steps=20, start_step=0, save_fn=first.save,
                  checkpoint_every=5, is_main=True, log=logged, checkpoint_path=first.checkpoint)
    assert info.value.steps_done == 8 and info.value.signal_name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == list(range(1, 9))

    resumed = ToyRun(one_process, checkpoint=tmp_path / "resumed.pt")  # a fresh process, same command
    assert resumed.load() == 8
    resumed.run(20, checkpoint_every=5)
    _assert_same_state(straight, resumed)
    assert not torch.equal(ToyRun(one_process).model.weight, straight.model.weight)  # it did train


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    saved = []

    def step_fn(step):
        return {"loss": float("nan") if step == 5 else 1.0}

    with pytest.raises(TrainingStopped, match=r"loss is nan at step 5; the last good checkpoint "
                                              r"\(step 4\) is kept at .*last\.pt") as info:
        run_stage(step_fn=step_fn, total_steps=10, start_step=0, save_fn=saved.append,
                  checkpoint_every=2, is_main=True, checkpoint_path=tmp_path / "last.pt")
    assert saved == [2, 4] and info.value.last_good == 4 and info.value.step == 5
    with pytest.raises(TrainingStopped, match="inf at step 3; the last good checkpoint \\(step 3\\)"):
        run_stage(step_fn=lambda s: {"loss": math.inf}, total_steps=10, start_step=3,
                  save_fn=saved.append, checkpoint_every=2, is_main=True)
    with pytest.raises(TrainingStopped, match="no checkpoint was written yet"):
        run_stage(step_fn=lambda s: {"loss": math.nan}, total_steps=10, start_step=0,
                  save_fn=saved.append, checkpoint_every=2, is_main=True)
    assert saved == [2, 4]


def test_sigterm_saves_then_stops_and_handlers_are_restored():
    saved, progress = [], []
    before = signal.getsignal(signal.SIGTERM)

    def step_fn(step):
        if step == 2:  # what the OS would call on `kill -TERM`
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler) and handler is not before
            handler(signal.SIGTERM, None)
        return {"loss": 1.0, "lr": 0.1}

    with pytest.raises(StageInterrupted, match="SIGTERM") as info:
        run_stage(step_fn=step_fn, total_steps=10, start_step=0, save_fn=saved.append,
                  checkpoint_every=100, is_main=True,
                  progress=lambda done, total: progress.append((done, total)))
    assert saved == [3] and info.value.steps_done == 3
    assert progress == [(1, 10), (2, 10), (3, 10)]
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_signal_aborts_at_once():
    def step_fn(step):
        handler = signal.getsignal(signal.SIGINT)
        handler(signal.SIGINT, None)
        handler(signal.SIGINT, None)  # raises KeyboardInterrupt
        return {"loss": 1.0}

    saved = []
    with pytest.raises(KeyboardInterrupt):
        run_stage(step_fn=step_fn, total_steps=5, start_step=0, save_fn=saved.append,
                  checkpoint_every=1, is_main=True)
    assert saved == []


def test_schedule_logging_and_non_main_ranks(tmp_path):
    saved, logged = [], []
    out = run_stage(step_fn=lambda s: {"loss": float(s), "lr": 0.5}, total_steps=7, start_step=2,
                    save_fn=saved.append, checkpoint_every=3, is_main=True, stage="distill",
                    log=lambda **f: logged.append(f), log_every=2)
    assert out == {"loss": 6.0, "lr": 0.5}
    assert saved == [3, 6, 7]
    assert [f["step"] for f in logged] == [4, 6, 7] and logged[0] == {"stage": "distill", "step": 4,
                                                                      "loss": 3.0, "lr": 0.5}
    saved.clear()
    run_stage(step_fn=lambda s: {"loss": 1.0}, total_steps=4, start_step=0, save_fn=saved.append,
              checkpoint_every=2, is_main=False, log=lambda **f: logged.append(f))
    assert saved == [] and len(logged) == 3  # only rank 0 writes
    assert run_stage(step_fn=lambda s: {"loss": 1.0}, total_steps=4, start_step=4,
                     save_fn=saved.append, checkpoint_every=2, is_main=True) == {}
    with pytest.raises(ValueError, match="'loss'"):
        run_stage(step_fn=lambda s: {"lr": 1.0}, total_steps=4, start_step=0, save_fn=saved.append,
                  checkpoint_every=2, is_main=True)
    with pytest.raises(ValueError):
        run_stage(step_fn=lambda s: {"loss": 1.0}, total_steps=4, start_step=0,
                  save_fn=saved.append, checkpoint_every=0, is_main=True)


def test_warmup_and_set_lr():
    assert warmup_lr(0, 1e-3, 1000) == pytest.approx(1e-6)
    assert warmup_lr(499, 1e-3, 1000) == pytest.approx(5e-4)
    assert warmup_lr(999, 1e-3, 1000) == warmup_lr(10**6, 1e-3, 1000) == pytest.approx(1e-3)
    assert warmup_lr(0, 1e-3, 0) == 1e-3
    opt = torch.optim.Adam([{"params": [torch.zeros(1, requires_grad=True)]},
                            {"params": [torch.zeros(1, requires_grad=True)], "lr": 5.0}])
    set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


def test_run_log(tmp_path):
    path = tmp_path / "run" / "log.jsonl"
    log = RunLog(path)
    log.write(stage="teacher", step=1, loss=torch.tensor(0.5), lr=1e-4, note="ok", bad=float("nan"))
    RunLog(path, is_main=False).write(stage="teacher", step=2, loss=1.0)  # rank 1: nothing
    with open(path, "a") as handle:
        handle.write('{"stage": "teacher", "st')  # a write cut short by a kill
    log(stage="distill", step=2, images=8, flag=True)
    assert read_log(path) == [
        {"stage": "teacher", "step": 1, "loss": 0.5, "lr": 1e-4, "note": "ok", "bad": None},
        {"stage": "distill", "step": 2, "images": 8, "flag": True}]
    with pytest.raises(TypeError, match="'vec'"):
        log.write(stage="teacher", step=3, vec=[1, 2])
