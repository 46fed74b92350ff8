"""``hashrepro`` / ``lightning`` / ``python -m hashrepro``: one LightningCLI in subclass mode.

YAML names models and data by short class names (``class_path: HashCNN``). Every run gets the
retrieval evaluator (``evaluator:``), a checkpoint on validation mAP (``checkpoint:``) and, by
default, an offline W&B logger grouped and tagged by dataset, model, variant and bits. After
``fit``, the best checkpoint is tested on the query set against the database (``--test_after_fit``).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import hashrepro.data  # noqa: F401  (registers the DataModules for short class names)
from hashrepro.callbacks import RetrievalEvaluator
from hashrepro.data.base import RetrievalDataModule
from hashrepro.data.formats import DataFileError
from hashrepro.models import DPSH, HashCNN, HashingModule, ReconstructHashing

MODELS = (DPSH, HashCNN, ReconstructHashing)  # imported, so YAML can name them by class name
WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"


#: Sizes a model takes from its data: DataModule property -> model init argument of that name.
#: A model without the argument is left alone (jsonargparse skips a link whose target its class
#: lacks), so each model declares only what it needs.
DATA_LINKS = ("num_classes", "num_items", "multilabel")


def schedule_length(max_epochs: int | None) -> int:
    """The LR schedule's length in epochs: ``trainer.max_epochs`` (Lightning's 1000 if unset)."""
    return 1000 if max_epochs is None else max_epochs


class HashreproCLI(LightningCLI):
    """LightningCLI with the evaluator, a validation-mAP checkpoint and W&B run grouping."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the always-on callbacks, the test-after-fit switch and the links.

        Links: the data's ``num_classes``, ``num_items`` and ``multilabel`` go to the model's
        arguments of those names once the DataModule exists (it loads its labels for them), and
        ``trainer.max_epochs`` becomes the cosine schedule's ``T_max``, so neither is typed in
        YAML and ``--trainer.max_epochs`` also sets the schedule's length.
        """
        for name in DATA_LINKS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.link_arguments(
            "trainer.max_epochs",
            "model.init_args.scheduler.init_args.T_max",
            compute_fn=schedule_length,
            apply_on="parse",
        )
        parser.add_lightning_class_args(RetrievalEvaluator, "evaluator")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/mAP",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-{epoch}",
                "checkpoint.save_last": True,
            }
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After fit, test the best checkpoint (selected on validation mAP).",
        )

    def before_instantiate_classes(self) -> None:
        """Fill W&B group, tags and run name from the model and data config."""
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        logger = cfg.get("trainer", {}).get("logger")
        loggers = logger if isinstance(logger, list) else [logger]
        for lg in loggers:
            if getattr(lg, "class_path", None) == WANDB_LOGGER:
                init = lg.init_args
                info = run_info(cfg)
                init.group = init.group or f"{info['dataset']}-{info['bits']}bits"
                init.tags = list(init.tags or []) + [
                    info["dataset"],
                    info["model"],
                    info["variant"],
                    f"{info['bits']}bits",
                ]
                init.name = init.name or (
                    f"{info['model']}-{info['variant']}-{info['dataset']}-"
                    f"{info['bits']}b-seed{cfg.get('seed_everything')}"
                )
                init.job_type = init.job_type or self.subcommand

    def instantiate_classes(self) -> None:
        """Instantiate; when a file is missing, name every missing file of the data and model.

        The DataModule is built (and reads its labels, for the links) before the model, so
        without this a run lacking both its data and a model file (e.g. CNN-F weights) would
        report only the data, and fail on the model only after the data is found. A corrupt
        or inconsistent file is re-raised as the reader's one-line :class:`DataFileError`.
        """
        try:
            super().instantiate_classes()
        except (FileNotFoundError, ValueError) as err:
            cause = file_error(err)  # jsonargparse may wrap it in a ValueError
            if cause is None:
                raise
            if not isinstance(cause, FileNotFoundError):
                raise cause from None
            errors = [cause]
            for other in (self._data_error(), self._model_file_error()):
                if other is not None and str(other) not in map(str, errors):
                    errors.append(other)
            raise FileNotFoundError("; also ".join(map(str, errors))) from None

    def _config(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def _data_error(self) -> Exception | None:
        """The error of the configured DataModule's ``check_files()``, if it has one."""
        data = self._config().get("data")
        if data is None or not getattr(data, "class_path", None):
            return None
        check = getattr(import_class(data.class_path), "check_files", None)
        if check is None:
            return None
        try:
            check(build(data))
        except (FileNotFoundError, ValueError) as err:
            return err
        return None

    def _model_file_error(self) -> FileNotFoundError | None:
        """A missing file of a model part given by class (e.g. a backbone's weights), if any."""
        model = self._config().get("model")
        init_args = getattr(model, "init_args", None)
        for value in vars(init_args).values() if init_args is not None else ():
            if not getattr(value, "class_path", None):
                continue
            try:
                build(value)
            except FileNotFoundError as err:
                return err
            except Exception:  # noqa: BLE001  (only a hint for the message)
                continue
        return None

    def _check_data(self) -> None:
        """Fail before training starts (and before a W&B run opens) if data files are missing."""
        check = getattr(self.datamodule, "check_files", None)
        if callable(check):
            check()

    def before_fit(self) -> None:
        """Check the data files."""
        self._check_data()

    def before_validate(self) -> None:
        """Check the data files."""
        self._check_data()

    def before_test(self) -> None:
        """Check the data files."""
        self._check_data()

    def after_fit(self) -> None:
        """Test the checkpoint chosen on validation mAP (never on the test queries)."""
        if not self.config[self.subcommand].get("test_after_fit", True):
            return
        if self.trainer.fast_dev_run or self.trainer.checkpoint_callback is None:
            ckpt = None
        else:
            ckpt = self.trainer.checkpoint_callback.best_model_path or None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)


def file_error(err: BaseException) -> FileNotFoundError | DataFileError | None:
    """The missing-file or data-file error that ``err`` is or was caused by, if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, (FileNotFoundError, DataFileError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def import_class(class_path: str) -> type:
    """The class named by a full ``package.module.Class`` path."""
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def build(spec: Any) -> Any:
    """Instantiate a parsed ``class_path`` / ``init_args`` config (one level, no links)."""
    init_args = getattr(spec, "init_args", None)
    return import_class(spec.class_path)(**(init_args.as_dict() if init_args is not None else {}))


def run_info(cfg: Any) -> dict[str, Any]:
    """Dataset, model, variant and bits of a run, from its parsed config."""
    model, data = cfg.get("model"), cfg.get("data")
    model_args = getattr(model, "init_args", {}) or {}
    return {
        "model": str(getattr(model, "class_path", "model")).rsplit(".", 1)[-1],
        "dataset": str(getattr(data, "class_path", "data")).rsplit(".", 1)[-1],
        "variant": model_args.get("variant", "proposed"),
        "bits": model_args.get("num_bits", "?"),
    }


def main(args: list[str] | None = None) -> HashreproCLI:
    """Run the command line; ``args=None`` reads ``sys.argv``."""
    os.environ.setdefault("WANDB_MODE", "offline")
    try:
        return make_cli(args)
    except (FileNotFoundError, ImportError, DataFileError) as err:
        if args is not None:  # called from Python: let the caller see the exception
            raise
        print(f"error: {err}", file=sys.stderr)  # from the shell: one line, no traceback
        raise SystemExit(2) from None


def make_cli(args: list[str] | None, run: bool = True) -> HashreproCLI:
    """Build the LightningCLI and run its subcommand (``run=False``: build only, no subcommand)."""
    return HashreproCLI(
        HashingModule,
        RetrievalDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults={
            "logger": {
                "class_path": WANDB_LOGGER,
                "init_args": {"project": "hashrepro", "save_dir": "results/runs"},
            },
        },
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
