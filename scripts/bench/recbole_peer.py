"""RecBole's SASRec on a dataset exported by `iisan data export recbole`, with the settings of
iisan's ID baseline, evaluated under both of iisan's masking conventions; and the check that
RecBole holds out the same validation and test interaction for every user as iisan.

    python recbole_peer.py DATA_PATH NAME OUT.json [--epochs N]
    python recbole_peer.py DATA_PATH NAME OUT.json --rerank SAVED.pth   # test ranks again

DATA_PATH/NAME/NAME.inter is the export. Writes OUT.json: test HR@10 / NDCG@10 / MRR under
`none` (RecBole's own full-sort convention, computed here from RecBole's scores) and `history`
(iisan's default: every item seen before the target left out, a repeated target a miss), RecBole's own reported test
metrics, best / run epochs, seconds per epoch, and the split check. Run by
scripts/bench/recbole_peer.sh, which also trains iisan's side.
"""

import json
import sys
import time

import numpy as np

# ---- compatibility shims for RecBole 1.2.1 with current numpy / torch (not patches of RecBole):
# numpy 2 removed np.float_, np.complex_ and np.unicode_, which RecBole's
# Config.compatibility_settings reads to re-create the aliases np.float, np.int, ... it uses;
# give it the numpy 2 names they stood for
for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
    if old not in np.__dict__:
        setattr(np, old, new)
import torch  # noqa: E402

# torch >= 2.6 loads checkpoints with weights_only=True by default; RecBole's own best-model
# checkpoint holds its config and RNG state, so it is loaded as before (our own file, trusted)
_load = torch.load
torch.load = lambda *a, **k: _load(*a, **{"weights_only": False, **k})

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402


def settings(name, data_path, epochs):
    """iisan's ID baseline (configs/id-scientific.toml and the defaults of docs/MODEL.md)."""
    return {
        "data_path": data_path,
        "dataset": name,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 10,
        "hidden_size": 64,
        "n_layers": 2,
        "n_heads": 2,
        "inner_size": 256,
        "hidden_dropout_prob": 0.1,
        "attn_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": 64,
        "eval_batch_size": 1024,
        "learning_rate": 2e-4,
        "epochs": epochs,
        "stopping_step": 10,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [10],
        "valid_metric": "Hit@10",
        "seed": 12345,
        "reproducibility": True,
        "device": "cpu",
        "use_gpu": False,
        "show_progress": False,
        "checkpoint_dir": "recbole-saved",
        "log_wandb": False,
    }


def targets(loader, ds):
    """User token -> target item token of each row of an evaluation loader's dataset."""
    f = loader.dataset.inter_feat
    users = ds.id2token(ds.uid_field, f[ds.uid_field].numpy())
    items = ds.id2token(ds.iid_field, f[ds.iid_field].numpy())
    return dict(zip(users, items))


def sequences(data_path, name):
    """User token -> its item tokens in the export, ordered by timestamp (RecBole's order)."""
    rows = {}
    with open(f"{data_path}/{name}/{name}.inter") as fh:
        next(fh)
        for line in fh:
            u, i, ts = line.rstrip("\n").split("\t")
            rows.setdefault(u, []).append((float(ts), i))
    return {u: [i for _, i in sorted(seq, key=lambda r: r[0])] for u, seq in rows.items()}


def split_check(data_path, name, valid, test):
    """RecBole's held-out targets against the export's last two items per user."""
    seqs = sequences(data_path, name)
    bad = sum((valid.get(u), test.get(u)) != (seq[-2], seq[-1]) for u, seq in seqs.items())
    return {"users": len(seqs), "recbole_valid_users": len(valid), "recbole_test_users": len(test), "disagree": bad}


def metrics(ranks, k=10):
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks <= k
    return {
        f"HR@{k}": float(hit.mean()),
        f"NDCG@{k}": float((hit / np.log2(ranks + 1)).mean()),
        "MRR": float((1.0 / ranks).mean()),
    }


def histories(data_path, name):
    """User token -> the item tokens before its test target (all of them, as iisan's `history`
    mask reads them, not only the MAX_ITEM_LIST_LENGTH inputs)."""
    return {u: seq[:-1] for u, seq in sequences(data_path, name).items()}


def rank_both(model, loader, ds, hist_tokens):
    """1-based rank of each test target among the catalogue's items under iisan's two
    conventions (docs/MODEL.md section 6): `none`, ties counted against the model; `history`,
    the items seen before the target left out, and a target seen before never a hit (rank N + 1)."""
    model.eval()
    n_items = ds.item_num - 1  # real items; id 0 is padding
    none, hist = [], []
    with torch.no_grad():
        for batch in loader:
            inter = batch[0].to("cpu")
            scores = model.full_sort_predict(inter).view(len(inter), -1)
            scores[:, 0] = -np.inf  # padding
            target = inter[ds.iid_field].long()
            ts = scores.gather(1, target.view(-1, 1))
            rank_none = (scores >= ts).sum(1)
            users = ds.id2token(ds.uid_field, inter[ds.uid_field].numpy())
            for b, u in enumerate(users):
                seen = np.unique(ds.token2id(ds.iid_field, hist_tokens[u]))
                none.append(int(rank_none[b]))
                if target[b].item() in seen:
                    hist.append(n_items + 1)
                else:
                    above = int((scores[b, seen] >= ts[b]).sum())
                    hist.append(int(rank_none[b]) - above)
    return metrics(none), metrics(hist)


def main():
    data_path, name, out = sys.argv[1:4]
    epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 100
    cfg = Config(model="SASRec", config_dict=settings(name, data_path, epochs))
    init_seed(cfg["seed"], cfg["reproducibility"])
    ds = create_dataset(cfg)
    train, valid, test = data_preparation(cfg, ds)
    check = split_check(data_path, name, targets(valid, ds), targets(test, ds))
    print("split check:", check, flush=True)
    model = SASRec(cfg, train.dataset).to("cpu")
    if "--rerank" in sys.argv:
        # rank the test users again with a saved best model (OUT.json's other fields kept)
        state = torch.load(sys.argv[sys.argv.index("--rerank") + 1], map_location="cpu")
        model.load_state_dict(state["state_dict"])
        res = json.load(open(out))
        res["none"], res["history"] = rank_both(model, test, ds, histories(data_path, name))
        json.dump(res, open(out, "w"), indent=2)
        print(json.dumps(res, indent=2))
        return
    trainer = Trainer(cfg, model)
    # seconds of each training pass (validation apart, as iisan's s/epoch) and each validation
    train_epoch, seconds = trainer._train_epoch, []

    def timed(*a, **k):
        t0 = time.time()
        r = train_epoch(*a, **k)
        seconds.append(time.time() - t0)
        return r

    trainer._train_epoch = timed
    scores = []

    def epoch_end(epoch, score):
        scores.append(score)
        print(f"epoch {epoch + 1}: valid Hit@10 {score:.4f}, {seconds[-1]:.1f} s training", flush=True)

    trainer.fit(train, valid, saved=True, show_progress=False, callback_fn=epoch_end)
    reported = trainer.evaluate(test, load_best_model=True, show_progress=False)
    none, hist = rank_both(trainer.model, test, ds, histories(data_path, name))
    res = {
        "split_check": check,
        "none": none,
        "history": hist,
        "recbole_reported": {k: float(v) for k, v in reported.items()},
        # RecBole's early stopping counts only a strictly better score as an improvement
        "best_epoch": int(np.argmax(scores)) + 1,
        "epochs_run": len(scores),
        "seconds_per_epoch": float(np.mean(seconds)),
        "train_samples": len(train.dataset),
    }
    with open(out, "w") as fh:
        json.dump(res, fh, indent=2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
