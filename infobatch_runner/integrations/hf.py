"""InfoBatch (or any registered strategy) in the Hugging Face Trainer, under Accelerate too. Needs
`pip install 'infobatch-runner[hf]'`; nothing else in infobatch_runner imports it.

    from infobatch_runner.integrations.hf import InfoBatchTrainer

    trainer = InfoBatchTrainer(model=model, args=TrainingArguments(num_train_epochs=10, ...),
                               train_dataset=train_set, strategy="infobatch", strategy_params={"ratio": 0.5})
    trainer.train()

What it changes in the Trainer, and why (the official InfoBatch LLaMA example overrides private
methods and its schedule never finishes):
- get_train_dataloader: each sample carries its index (IndexedDataset: a dict sample gets an
  "index" entry, kept through remove_unused_columns), batches come from the Pruner's batch sampler,
  built on the first call with epochs = num_train_epochs, seed = args.seed, on args.device, one
  replica per Accelerate process. The pruner shards each epoch's plan itself, so the loader is
  prepared by Accelerate as for one process: under DDP its BatchSamplerShard would shard the shards
  again, and its even_batches would drop the short batches of the balanced tail.
- compute_loss: in training, the model's per-sample loss (cross-entropy of the logits, per sequence
  and over its labelled tokens for a causal LM; or `per_sample_loss(outputs, labels)`) goes
  through pruner.loss: observed, and returned as mean(weight * loss). Evaluation is the Trainer's own.
- each epoch: the plan is made before the epoch starts, and the Trainer is told this epoch's real
  number of batches and optimizer steps (it otherwise sizes every epoch on the first, full one:
  gradient accumulation would carry a pruned epoch's last partial step into the next epoch).
- the learning-rate schedule (any of the Trainer's lr_scheduler_type, warm-up included) runs on
  the run's progress in epochs, epoch + steps done / this epoch's steps, as infobatch-run's does:
  it ends exactly at the last real step, however long the pruned epochs turn out (InfoBatch's
  lengths are known only when each epoch is planned). The schedule's nominal length, and the steps
  warmup_steps count, are those of full-data epochs. The progress bar's total is re-estimated at each
  epoch.
- checkpoints: each of the Trainer's checkpoints holds the pruner's state (every process its own,
  `infobatch_pruner_<rank>.pt`, with its losses not merged yet); train(resume_from_checkpoint=...)
  restores it and resumes where the pruner stands, mid-epoch included: the Trainer would locate a
  pruned run's epoch by its first epoch's length and skip batches of another plan.
- the fewer-epochs baseline (strategy="short_schedule"): the Trainer trains its round((1 - s) E)
  epochs with the whole schedule compressed into them, as infobatch-run does.
- refused, with a sentence: max_steps (pruning plans epochs), a fractional num_train_epochs,
  dataloader_drop_last (it would drop planned samples), a dataset without __len__/__getitem__, the
  static strategies that need scores from proxy runs (el2n, grand, forgetting), a checkpoint without
  the pruner's state, and resume_from_checkpoint=True with no checkpoint (as the Trainer does).
"""

import inspect
import math
import os
from collections.abc import Callable, Mapping
from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

try:
    from accelerate.data_loader import prepare_data_loader
    from transformers import Trainer, TrainerCallback
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, RemoveColumnsCollator, get_last_checkpoint, seed_worker
except ImportError:
    raise ImportError("infobatch_runner.integrations.hf needs transformers: pip install 'infobatch-runner[hf]'") from None

from infobatch_runner.data.loaders import batch_starts
from infobatch_runner.integrations.batches import IndexedDataset
from infobatch_runner.integrations.pruner import Pruner


def pruner_state_file(checkpoint: str, rank: int) -> str:
    return os.path.join(checkpoint, f"infobatch_pruner_{rank}.pt")


class _SavePrunerState(TrainerCallback):
    """Writes the pruner's state into each checkpoint the Trainer saves (on every process: its own)."""

    def __init__(self, trainer: "InfoBatchTrainer"):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        pruner = self.trainer.pruner
        if pruner is not None:
            folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            os.makedirs(folder, exist_ok=True)  # another process may write the Trainer's files there first
            torch.save(pruner.state_dict(), pruner_state_file(folder, pruner.world.rank))


def sequence_loss(outputs, labels: torch.Tensor, causal: bool) -> torch.Tensor:
    """One loss per sample, float32: cross-entropy of a classifier's logits, or for a causal LM the
    mean over each sequence's labelled tokens (labels shifted by one, -100 ignored, as the model's
    own loss)."""
    logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
    if logits.dim() == 2:
        return F.cross_entropy(logits.float(), labels, reduction="none")
    if logits.dim() != 3:
        raise ValueError(f"per-sample loss: logits of shape {tuple(logits.shape)} are neither a classifier's "
                         "(batch, classes) nor a sequence model's (batch, length, vocabulary); pass per_sample_loss=")
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    tokens = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100,
                             reduction="none").view(labels.shape)
    counted = (labels != -100).sum(dim=1)
    return tokens.sum(dim=1) / counted.clamp(min=1)


class InfoBatchTrainer(Trainer):
    """A Trainer that prunes its training data with a registered strategy (see the module docstring).

    strategy: a registered name ("infobatch", "random_dynamic", ...), a prune config mapping, or a
    Strategy; strategy_params: its parameters ({"ratio": 0.5, "delta": 0.875}). per_sample_loss:
    (outputs, labels) -> one loss per sample, for models the default does not cover. index_key: the
    entry IndexedDataset adds to each (dict) sample. After the first get_train_dataloader (train()
    calls it), `trainer.pruner` holds the plans and `trainer.pruner.state_dict()` the whole state.
    """

    def __init__(self, *args, strategy="infobatch", strategy_params: dict | None = None,
                 per_sample_loss: Callable | None = None, index_key: str = "index", **kwargs):
        if not hasattr(Trainer, "_run_epoch"):
            raise ImportError("InfoBatchTrainer needs transformers >= 5.25, < 6 (it sizes each epoch through "
                              "Trainer._run_epoch): pip install 'infobatch-runner[hf]'")
        super().__init__(*args, **kwargs)
        data = self.train_dataset
        if data is not None and (isinstance(data, torch.utils.data.IterableDataset) or not hasattr(data, "__len__")
                                 or not hasattr(data, "__getitem__")):
            raise ValueError(f"InfoBatchTrainer needs a map-style train_dataset (with __len__ and __getitem__): a "
                             f"pruner picks its samples by index, which a {type(data).__name__} cannot give")
        if self.args.dataloader_drop_last:
            raise ValueError("InfoBatchTrainer trains every sample a plan keeps: dataloader_drop_last=True would drop "
                             "the last batch of each pruned epoch and its saving would not be the pruner's; set it "
                             "to False")
        if self.args.max_steps > 0:
            raise ValueError(f"InfoBatchTrainer plans whole epochs: set num_train_epochs, not max_steps "
                             f"(got max_steps={self.args.max_steps})")
        if self.args.num_train_epochs != int(self.args.num_train_epochs) or self.args.num_train_epochs < 1:
            raise ValueError(f"InfoBatchTrainer needs a whole num_train_epochs >= 1 (got {self.args.num_train_epochs})")
        self.strategy, self.strategy_params = strategy, dict(strategy_params or {})
        self.per_sample_loss, self.index_key = per_sample_loss, index_key
        self.pruner: Pruner | None = None
        self.loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it by the accumulation steps
        self._epoch_at: tuple[int, int, int] | None = None  # (epoch, scheduler steps before it, its steps)
        self._resume_from: str | None = None  # the checkpoint whose pruner state the next pruner loads
        self.add_callback(_SavePrunerState(self))

    # -- data --------------------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("InfoBatchTrainer: training requires a train_dataset")
        if self.pruner is None:  # once per train(): a new run's, or the checkpoint's restored
            self.pruner = Pruner(self.strategy, len(self.train_dataset), int(self.args.num_train_epochs),
                                 seed=self.args.seed, device=self.args.device, num_replicas=self.accelerator.num_processes,
                                 rank=self.accelerator.process_index, **self.strategy_params)
            if self.pruner.strategy.scoring() is not None:
                name, self.pruner = self.pruner.strategy.name, None
                raise ValueError(f"strategy {name!r} ranks the data by scores from proxy trainings before the run, "
                                 "which the Trainer has no step for; use a dynamic strategy (infobatch, seta, "
                                 "random_dynamic, rs2, epsilon_greedy, ucb) or static_random here, or infobatch-run")
            if self._resume_from is not None:
                self.pruner.load_state_dict(torch.load(pruner_state_file(self._resume_from, self.pruner.world.rank),
                                                       weights_only=False))
        args = self.args
        workers = args.dataloader_num_workers
        loader = DataLoader(IndexedDataset(self.train_dataset, key=self.index_key),
                            batch_sampler=self.pruner.batch_sampler(self._train_batch_size),
                            collate_fn=self._collator_keeping_the_index(), num_workers=workers,
                            pin_memory=args.dataloader_pin_memory and args.device.type != "cpu",
                            persistent_workers=args.dataloader_persistent_workers and workers > 0,
                            prefetch_factor=args.dataloader_prefetch_factor if workers > 0 else None,
                            worker_init_fn=partial(seed_worker, num_workers=workers, rank=args.process_index))
        # Accelerate's loader (device placement, the end of the epoch for gradient accumulation) for
        # one process: the pruner has sharded the plan already, which BatchSamplerShard would shard again.
        return prepare_data_loader(loader, args.device, num_processes=1, process_index=0, put_on_device=True,
                                   non_blocking=self.accelerator.non_blocking)

    def _collator_keeping_the_index(self) -> Callable:
        if not self.args.remove_unused_columns:
            return self.data_collator
        model = self.accelerator.unwrap_model(self.model)
        columns = [*inspect.signature(model.forward).parameters, "label", "label_ids", "labels", *self.label_names,
                   self.index_key]
        return RemoveColumnsCollator(self.data_collator, columns, model_name=type(model).__name__, description="training")

    # -- loss --------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.index_key not in inputs:  # evaluation and prediction: the Trainer's own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        if "labels" not in inputs:
            raise ValueError(f"the training batches hold no 'labels' (they hold {', '.join(sorted(inputs))}): "
                             "InfoBatchTrainer scores each sample by its loss against its labels; add a 'labels' column")
        index, labels = inputs.pop(self.index_key), inputs.pop("labels")
        outputs = model(**inputs)
        if self.per_sample_loss is not None:
            losses = self.per_sample_loss(outputs, labels)
        elif isinstance(outputs, Mapping) and "logits" not in outputs:
            raise ValueError(f"{type(self.accelerator.unwrap_model(model)).__name__} returns no logits (it returns "
                             f"{', '.join(outputs)}): pass per_sample_loss=(outputs, labels) -> one loss per sample")
        else:
            causal = type(self.accelerator.unwrap_model(model)).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
            losses = sequence_loss(outputs, labels, causal)
        loss = self.pruner.loss(losses, index)
        return (loss, outputs) if return_outputs else loss

    # -- epochs and schedule -------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint is True:  # as the Trainer resolves it, and refuses it
            out = self.args.output_dir
            last = get_last_checkpoint(out) if out and os.path.isdir(out) else None
            if last is None:
                raise ValueError(f"No valid checkpoint found in output directory ({out})")
            resume_from_checkpoint = last
        if resume_from_checkpoint:
            if not os.path.isdir(resume_from_checkpoint):
                raise ValueError(f"Can't find a valid checkpoint at {resume_from_checkpoint}")
            state = pruner_state_file(resume_from_checkpoint, self.accelerator.process_index)
            if not os.path.isfile(state):
                raise ValueError(f"{resume_from_checkpoint} holds no {os.path.basename(state)}: it was not saved by "
                                 "an InfoBatchTrainer, and without the pruner's state the run cannot go on as it was")
        self._resume_from = resume_from_checkpoint or None
        self.pruner = None  # a new run, or the saved one: planned afresh or restored in get_train_dataloader
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
        finally:
            self._resume_from = None

    def _init_training_state(self, *args, **kwargs):
        """Where to resume: the pruner's epoch and the batches it trained, not the Trainer's guess
        from its step count and the first epoch's length."""
        epoch, batches = super()._init_training_state(*args, **kwargs)
        if self._resume_from is None:
            return epoch, batches
        if self.pruner.batches_done >= self._epoch_batches():  # saved at the end of its epoch
            return self.pruner.epoch + 1, 0
        return self.pruner.epoch, self.pruner.batches_done

    def set_initial_training_values(self, args, dataloader):
        """The run's nominal length, the same for a fresh and a resumed run: epochs x the steps of a
        full-data epoch (the Trainer would take the loader's length now: the first epoch's, or what is
        left of a resumed one). The schedule is sized on it and read at the run's progress; a pruned
        run never reaches it, so the Trainer's max_steps never stops it early."""
        values = list(super().set_initial_training_values(args, dataloader))
        full = len(batch_starts(math.ceil(len(self.train_dataset) / self.pruner.world.size), self._train_batch_size))
        per_epoch = max(math.ceil(full / args.gradient_accumulation_steps), 1)
        epochs = self.pruner.schedule_epochs
        values[0], values[1], values[5], values[6] = epochs, per_epoch, full, per_epoch * epochs
        return tuple(values)

    def get_resumed_dataloader(self, dataloader, num_batches: int):
        """The pruner's sampler starts after the batches its state trained: nothing to skip here."""
        return dataloader

    def _epoch_batches(self) -> int:
        """This process's batches in the current epoch, all of them (a resumed epoch included)."""
        return len(batch_starts(len(self.pruner.current()), self._train_batch_size))

    def _run_epoch(self, **kwargs):
        """Plan the epoch, then run the Trainer's epoch with its real batch and step counts."""
        epoch, gas = kwargs["epoch"], self.args.gradient_accumulation_steps
        self.pruner.set_epoch(epoch)  # a no-op for a restored epoch
        batches = self._epoch_batches()
        steps = max(math.ceil(batches / gas), 1)
        done = self.pruner.batches_done // gas  # a resumed epoch's steps already taken
        self._epoch_at = (epoch, (self.lr_scheduler.last_epoch if self.lr_scheduler is not None else 0) - done, steps)
        self._resize_progress_bar(epoch, steps)
        return super()._run_epoch(**{**kwargs, "steps_in_epoch": batches, "num_update_steps_per_epoch": steps})

    def _resize_progress_bar(self, epoch: int, steps: int) -> None:
        """The bar's total: the steps done, and this epoch's for every epoch left (an estimate)."""
        for callback in self.callback_handler.callbacks:
            bar = getattr(callback, "training_bar", None)
            if bar is not None:
                bar.total = self.state.global_step + steps * (self.pruner.schedule_epochs - epoch)
                bar.refresh()

    def epochs_done(self, scheduler_step: int) -> float:
        """The run's progress in epochs at a scheduler step: epoch + steps done / this epoch's steps."""
        if self._epoch_at is None:
            return 0.0
        epoch, before, steps = self._epoch_at
        return epoch + min(max(scheduler_step - before, 0), steps) / steps

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """The Trainer's schedule, read at the run's progress: step s of a schedule of
        `num_training_steps` is taken at (epochs done / epochs) x num_training_steps."""
        created = self.lr_scheduler is None
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if not created:
            return scheduler  # one passed in through optimizers=(...): the user's, stepped as the Trainer does
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            raise ValueError(f"InfoBatchTrainer runs the schedule on epoch progress and can map only step schedules; "
                             f"lr_scheduler_type={self.args.lr_scheduler_type} is not one")
        epochs = self.pruner.schedule_epochs

        def at_progress(factor):
            return lambda step: factor(self.epochs_done(step) / epochs * num_training_steps)

        scheduler.lr_lambdas = [at_progress(f) for f in scheduler.lr_lambdas]
        return scheduler


__all__ = ["InfoBatchTrainer", "sequence_loss"]
