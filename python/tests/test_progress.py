"""What a progress callback receives: tasks that start, advance to their total and finish;
one epoch event per epoch; notes."""

import io

import iisan
from iisan._progress import Bar


def test_training_reports_every_step_and_epoch(work, dataset):
    events = []
    cfg = {
        "data": {"dir": str(dataset)},
        "model": {"method": "id"},
        "train": {"epochs": 2, "batch": 32},
        "run": {"dir": str(work / "runs"), "name": "progress"},
    }
    run = iisan.train(cfg, progress=events.append)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "note" and "training id on data (300 users" in events[0]["line"]
    starts = [e for e in events if e["event"] == "start"]
    assert [s["label"] for s in starts] == ["epoch 1", "epoch 2"]
    assert all(s["unit"] == "steps" and s["total"] == 10 and s["done"] == 0 for s in starts)
    # between each start and its finish, the advances add up to the task's total
    i = 0
    for s in starts:
        i = events.index(s, i)
        j = kinds.index("finish", i)
        assert sum(e["n"] for e in events[i:j] if e["event"] == "advance") == s["total"]
        i = j
    ep = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in ep] == [1, 2]
    assert ep[0]["metric"] == "HR@10" and ep[0]["mask"] == "history" and ep[0]["improved"]
    losses = [e["loss"] for e in run.epochs()]
    assert [e["loss"] for e in ep] == losses


def test_the_default_bar_draws_without_tqdm_and_prints_epoch_lines():
    out = io.StringIO()
    bar = Bar(file=out)
    assert not bar.live and bar.tqdm is None  # a file: lines only, no bar
    bar({"event": "start", "label": "epoch 1", "unit": "steps", "total": 4, "done": 0})
    bar({"event": "advance", "n": 4})
    bar({"event": "epoch", "epoch": 1, "loss": 1.5, "steps": 4, "train_seconds": 0.25,
         "eval_seconds": 0.5, "metric": "HR@10", "mask": "history", "valid": 0.125, "improved": True})
    bar({"event": "finish"})
    text = out.getvalue()
    assert "epoch   1  loss 1.5000  valid HR@10 0.1250 (mask history)  train 0.2s  eval 0.5s  *" in text


def test_on_a_terminal_without_tqdm_the_bar_is_one_line_rewritten_in_place():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    bar = Bar(file=out)
    bar.tqdm = None  # as without tqdm installed
    assert bar.live
    bar({"event": "start", "label": "text", "unit": "items", "total": 64, "done": 32})
    bar({"event": "advance", "n": 16})
    bar({"event": "note", "line": "a note"})
    bar({"event": "finish"})
    text = out.getvalue()
    assert "\rtext: 48/64 items" in text
    # the line is cleared before the note is printed
    assert text.index("48/64") < text.index("\r" + " " * 80 + "\r") < text.index("a note\n")
