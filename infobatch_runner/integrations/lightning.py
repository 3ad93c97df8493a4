"""A PyTorch Lightning callback that prunes a LightningModule's training data with any registered
strategy (InfoBatch by default). Needs `pip install 'infobatch-runner[lightning]'`; users import it
as infobatch_runner.lightning, and nothing else in infobatch_runner imports it.

    trainer = Trainer(max_epochs=10, callbacks=[InfoBatchCallback("infobatch", len(train_set), ratio=0.5)])

    class Module(LightningModule):
        def train_dataloader(self):                 # self.pruner is set by the callback
            return DataLoader(IndexedDataset(train_set), batch_sampler=self.pruner.batch_sampler(64))

        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            return self.pruner.loss(F.cross_entropy(self(x), y, reduction="none"), idx)

What it does, and why:
- setup (fit): builds a new Pruner for each fit (epochs = the Trainer's max_epochs unless given; the strategy on
  the Trainer's root device; under DDP num_replicas / rank are the Trainer's world size and global
  rank) and sets it on the module as `pl_module.pruner`.
- Lightning measures len(train dataloader) only when it (re)loads the dataloaders, and by default
  once per fit. A pruned epoch's plan has its own length, so the callback sets
  `reload_dataloaders_every_n_epochs=1` when it is 0 (any other value is refused), and the pruner
  plans the epoch Lightning is about to run whenever the sampler is measured or iterated (the
  epoch the Trainer is going to pass to set_epoch): len(dataloader), the progress bar,
  limit_train_batches and the epoch's end are this epoch's, also on resuming from a checkpoint.
- on_train_epoch_end: under DDP, the epoch's observations of all ranks are merged into every
  rank's strategy (one all-gather); Trainer(use_distributed_sampler=False) is required there, as
  the pruner shards its plan itself.
- state_dict/load_state_dict: the pruner's state (strategy, generator, epoch, plan) travels in
  Lightning's checkpoints.
- the fewer-epochs baseline (short_schedule): training stops after `pruner.schedule_epochs` epochs;
  configure_optimizers, which runs after the callback's setup, sizes the schedule on
  `self.pruner.schedule_epochs` (equal to max_epochs for every other strategy).
"""

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities import rank_zero_info
except ImportError:  # the older standalone package
    try:
        import pytorch_lightning as pl
        from pytorch_lightning.utilities import rank_zero_info
    except ImportError:
        raise ImportError("infobatch_runner.lightning needs PyTorch Lightning: "
                          "pip install 'infobatch-runner[lightning]'") from None

from infobatch_runner.integrations.pruner import Pruner


class InfoBatchCallback(pl.Callback):
    """Prune the training data of a LightningModule (see the module docstring).

    strategy: a registered name ("infobatch", "random_dynamic", ...) with its parameters as keyword
    arguments, a prune config mapping, or a Strategy. num_samples: the training set's length.
    epochs: defaults to the Trainer's max_epochs. attribute: the module attribute the Pruner is set on.
    """

    def __init__(self, strategy="infobatch", num_samples: int | None = None, epochs: int | None = None, *,
                 seed: int = 0, device=None, attribute: str = "pruner", **params):
        self.strategy = strategy
        self.num_samples = num_samples
        self.epochs = epochs
        self.seed = seed
        self.device = device
        self.attribute = attribute
        self.params = params
        self.pruner: Pruner | None = None
        self._restored: dict | None = None  # a state loaded before setup built the pruner

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        world = trainer.world_size
        if world > 1 and getattr(getattr(trainer, "_accelerator_connector", None), "use_distributed_sampler", False):
            raise ValueError("InfoBatchCallback shards each epoch's plan itself: pass "
                             "Trainer(use_distributed_sampler=False).")
        reload = trainer.reload_dataloaders_every_n_epochs
        if reload == 0:
            trainer.reload_dataloaders_every_n_epochs = 1
            rank_zero_info("InfoBatchCallback: reload_dataloaders_every_n_epochs=1, so that Lightning measures "
                           "each pruned epoch's length.")
        elif reload != 1:
            raise ValueError(f"InfoBatchCallback needs reload_dataloaders_every_n_epochs=1 (or 0), got {reload}: "
                             "every epoch's plan has its own length.")
        # Every fit is a run of its own (a second fit with the same callback plans for its own
        # max_epochs); a resumed fit's state is loaded into this pruner, after setup or before it.
        epochs = self.epochs if self.epochs is not None else trainer.max_epochs
        if epochs is None or epochs < 1:
            raise ValueError("InfoBatchCallback needs epochs=..., or Trainer(max_epochs=...) >= 1")
        device = self.device if self.device is not None else trainer.strategy.root_device
        self.pruner = Pruner(self.strategy, self.num_samples, epochs, seed=self.seed, device=device,
                             num_replicas=world, rank=trainer.global_rank, **self.params)
        if self._restored:
            self.pruner.load_state_dict(self._restored)
            self._restored = None
        self.pruner.epoch_source = lambda: _next_epoch(trainer)
        setattr(pl_module, self.attribute, self.pruner)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.pruner.end_epoch()
        if trainer.current_epoch + 1 >= self.pruner.schedule_epochs:  # short_schedule: its epochs are over
            trainer.should_stop = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self.pruner is not None:
            self.pruner.epoch_source = None  # keeps no reference to the trainer

    def state_dict(self) -> dict:
        if self.pruner is None:
            return {}
        self.pruner.end_epoch()  # every rank saves (Trainer.save_checkpoint runs on all ranks)
        return self.pruner.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        if not state_dict:
            return
        if self.pruner is None:
            self._restored = state_dict
        else:
            self.pruner.load_state_dict(state_dict)


def _next_epoch(trainer) -> int:
    """The epoch Lightning passes to the samplers' set_epoch: its fit loop's processed epochs (which,
    on resuming, is already the epoch to run while trainer.current_epoch still lags). Never past the
    last epoch: Lightning measures the loader once more after it, and that would plan an epoch
    nobody trains."""
    progress = getattr(getattr(trainer.fit_loop, "epoch_progress", None), "current", None)
    epoch = progress.processed if progress is not None else trainer.current_epoch
    last = trainer.max_epochs
    return min(epoch, last - 1) if last is not None and last > 0 else epoch


__all__ = ["InfoBatchCallback"]
