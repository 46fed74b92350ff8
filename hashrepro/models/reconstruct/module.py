"""``ReconstructHashing``: the LightningModule wiring the two towers, the memory and the losses."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from hashrepro.models.base import HashingModule, default_optimizer
from hashrepro.models.common import MODALITIES, CodeMemory
from hashrepro.models.reconstruct.loss import ReconstructHashingLoss, SideInputs
from hashrepro.models.reconstruct.network import Activation, TwoTowerHashNet

__all__ = ["ReconstructHashing"]

OTHER = {"image": "text", "text": "image"}


class ReconstructHashing(HashingModule):
    """Cross-modal reconstruct hashing (Liu, Yan, Bai & Zhou, S+SSPR 2018), OUR RECONSTRUCTION.

    The paper's full text was not available; this model is rebuilt from its abstract (an
    end-to-end network learning features and hash codes together, keeping the relationship of
    the features across modalities, a hash net with its hash loss, and reconstruction of the
    features from the codes) on top of DCMH (Jiang & Li, CVPR 2017), which it extends. Every
    choice below that the abstract does not fix is ours.

    Network, per modality m in {image, text}:

    - backbone ``m_net`` -> feature ``x_m`` (B, D_m);
    - hash net: ``tanh(MLP(x_m))`` -> code (B, K) (``hash_hidden`` sets the MLP's hidden width,
      ``None`` gives DCMH's single linear layer; ``activation="identity"`` drops the tanh);
    - projection ``tanh(W_m x_m)`` into a common d_f-dim space (``feature_dim``), since D_image
      and D_text differ and ReLU features cannot express dissimilarity by inner products;
    - decoders: code -> x_image and code -> x_text (own AND other modality).

    Loss, per side (``F`` image codes, ``G`` text codes, ``S_ij = 1`` iff items share a label):

    - feature relation (``feature_weight``): DCMH's inter-modal likelihood
      ``-sum(S_ij T_ij - log(1 + e^T_ij))``, ``T_ij = feature_scale * z_i^T z_j``, on the
      projected features of the batch (image i vs text j);
    - hash loss: the same likelihood on the codes against the memory of the other modality
      (``code_weight``, scale ``code_scale`` = 1/2 as DCMH), quantization ``||B - F||^2``
      toward the shared ``B = sign(F + G)`` (``quantization_weight``, DCMH's gamma) and bit
      balance ``||F^T 1||^2`` over all stored items (``balance_weight``, DCMH's eta);
    - reconstruction (``reconstruction_weight``): MSE of the four decoders against the
      backbone features, DETACHED (targets are constants: the term trains the decoders and,
      through the codes, the hash nets and backbones, but cannot shrink the features to make
      them easy to predict); each target vector is rescaled to unit RMS
      (``normalize_targets``).

    Every term has a weight and 0 switches it off, so the baselines are configurations:
    ``no-recon`` (reconstruction 0), ``no-feature-relation`` (feature relation 0) and ``dcmh``
    (both 0, ``hash_hidden: null``, codes straight from a linear layer as DCMH; its configs also
    set DCMH's own ``normalization="sum"`` with gamma = eta = 1 and its authors' SGD).

    Training (all variants, so the ablations differ only in weights): DCMH's memory of F, G and
    B for every item, indexed by the dataset ``index`` (``num_items`` = dataset size, linked
    from the DataModule by the CLI; :class:`~hashrepro.models.common.CodeMemory`), and DCMH's
    alternation with manual optimization and two optimizers (the YAML ``optimizer`` applied to
    each side's parameters).
    Per batch: both towers run once; their detached codes are written to the memory (in a
    distributed run, every process's batch: the memories stay identical); the image side's
    loss holds the text memory and text features fixed, the text side's the image ones, and
    since the two losses share no parameters one backward pass of their sum steps both sides
    exactly as two alternating passes would. B of an item is set to ``sign(F + G)`` the first
    time the item is seen and refreshed for all items at the end of every training epoch
    (DCMH's B-step). Items not seen yet are left out of the likelihood and balance sums.

    Args:
        image_net: image backbone with an int ``out_features``.
        text_net: text backbone with an int ``out_features``.
        num_bits: code length K.
        num_items: number of items of the whole dataset (largest ``index`` + 1): the size of
            the memory (the CLI links it from the DataModule).
        hash_hidden: hidden width of the hash nets; ``None`` for a single linear layer (DCMH).
        activation: ``"tanh"`` or ``"identity"`` on the codes.
        feature_dim: size d_f of the common feature space of the feature-relation term.
        decoder_hidden: hidden width of the decoders; ``None`` for linear decoders.
        dropout: dropout in the hash nets and decoders.
        feature_weight: weight of the feature-relation likelihood (0 = off).
        code_weight: weight of the code likelihood (0 = off).
        quantization_weight: DCMH's gamma (0 = off).
        balance_weight: DCMH's eta (0 = off).
        reconstruction_weight: weight of the reconstruction MSE (0 = off).
        feature_scale: inner-product factor of the feature likelihood.
        code_scale: inner-product factor of the code likelihood.
        normalize_targets: rescale reconstruction targets to unit RMS.
        normalization: ``"mean"`` (ours: every term a mean; with weights 1 and 1 DCMH's loss
            with gamma = N / K and eta = 1 / K) or ``"sum"`` (DCMH's own form, where its
            authors' gamma = eta = 1 apply; the DCMH configs use it). See
            :class:`~hashrepro.models.reconstruct.loss.ReconstructHashingLoss`.
        variant: tag of the configuration (``proposed``, ``no-recon``, ``dcmh``, ...).
        optimizer: optimizer factory, applied to each side's parameters.
        scheduler: optional LR scheduler factory, one per optimizer, stepped every epoch.

    """

    def __init__(
        self,
        image_net: nn.Module,
        text_net: nn.Module,
        num_items: int,
        num_bits: int = 32,
        hash_hidden: int | None = 1024,
        activation: Activation = "tanh",
        feature_dim: int = 128,
        decoder_hidden: int | None = None,
        dropout: float = 0.0,
        feature_weight: float = 1.0,
        code_weight: float = 1.0,
        quantization_weight: float = 1.0,
        balance_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        feature_scale: float = 0.5,
        code_scale: float = 0.5,
        normalize_targets: bool = True,
        normalization: str = "mean",
        variant: str = "proposed",
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(
            num_bits=num_bits, variant=variant, optimizer=optimizer, scheduler=scheduler
        )
        self.save_hyperparameters(ignore=["image_net", "text_net", "optimizer", "scheduler"])
        self.automatic_optimization = False
        self.criterion = ReconstructHashingLoss(
            feature_weight=feature_weight,
            code_weight=code_weight,
            quantization_weight=quantization_weight,
            balance_weight=balance_weight,
            reconstruction_weight=reconstruction_weight,
            feature_scale=feature_scale,
            code_scale=code_scale,
            normalize_targets=normalize_targets,
            normalization=normalization,
        )
        self.net = TwoTowerHashNet(
            image_net,
            text_net,
            num_bits,
            hash_hidden=hash_hidden,
            activation=activation,
            feature_dim=feature_dim if feature_weight > 0 else None,
            reconstruct=reconstruction_weight > 0,
            decoder_hidden=decoder_hidden,
            dropout=dropout,
        )
        self.memory = CodeMemory(num_items, num_bits, MODALITIES)

    # ----------------------------------------------------------------- inference
    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Real-valued codes ``{modality: (B, K)}`` of the modalities present in ``batch``."""
        return {m: self.net.codes(m, batch[m]) for m in MODALITIES if m in batch}

    # ----------------------------------------------------------------- training
    def compute_losses(
        self, batch: dict[str, torch.Tensor]
    ) -> dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """Run both towers, update the memory and return each side's loss and terms.

        Needs no Trainer (the unit tests call it directly); :meth:`training_step` steps the
        optimizers on its results.

        Returns:
            ``{"image": (loss, terms), "text": (loss, terms)}``; the image loss has gradients
            only for the image side's parameters and the text loss only for the text side's.

        """
        index = batch["index"].long()
        labels = batch["label"].float()
        out = self.net(batch["image"], batch["text"])
        mem = self.memory
        written = mem.update(
            index, labels=labels, image=out["image"]["code"], text=out["text"]["code"]
        )  # every process's batch in a distributed run
        mem.init_binary(written)
        stored = mem.seen_index()  # (M,)
        others_in_memory = stored[~torch.isin(stored, index)]  # stored items not in the batch
        stored_labels = mem.labels[stored]  # (M, C)
        binary = mem.binary[index]  # (B, K)
        results = {}
        for side in MODALITIES:
            other = OTHER[side]
            mine, theirs = out[side], out[other]
            codes = mine["code"]
            own_memory = getattr(mem, side)
            inputs = SideInputs(
                codes=codes,
                binary=binary,
                labels=labels,
                other_codes=getattr(mem, other)[stored],
                other_labels=stored_labels,
                memory_codes=torch.cat([own_memory[others_in_memory], codes]),
            )
            if "projection" in mine:
                inputs.features = mine["projection"]
                inputs.other_features = theirs["projection"].detach()
            if "reconstruction" in mine:
                inputs.reconstructions = {
                    f"{side}_to_{dst}": (
                        mine["reconstruction"][dst],
                        out[dst]["feature"].detach(),
                    )
                    for dst in MODALITIES
                }
            results[side] = self.criterion(inputs)
        return results

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One alternation: step the image side and the text side; log every term.

        The two sides' losses share no parameter (each holds the other side fixed), so one
        backward pass of their sum gives each side exactly its own gradients: the same steps
        as two separate passes, and under DDP every parameter takes part in the one reduction.
        """
        optimizers = self.optimizers()
        results = self.compute_losses(batch)
        for opt in optimizers:
            opt.zero_grad()
        total = results["image"][0] + results["text"][0]
        self.manual_backward(total)
        for opt in optimizers:
            opt.step()
        total = total.detach()
        size = int(batch["index"].shape[0])
        log = {"train/loss": total}
        for side in MODALITIES:
            log[f"train/loss_{side}"] = results[side][0].detach()
        for term in ReconstructHashingLoss.TERMS:
            values = [results[s][1][term].detach() for s in MODALITIES if term in results[s][1]]
            if values:
                log[f"train/{term}"] = sum(values)
        self.log_dict(log, on_step=False, on_epoch=True, batch_size=size)
        self.log("train/loss_step", total, on_step=True, on_epoch=False, batch_size=size)
        return total

    def on_train_epoch_end(self) -> None:
        """DCMH's B-step (B = sign(F + G) over the memory) and the per-epoch LR schedule."""
        self.memory.refresh_binary()
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for sch in schedulers if isinstance(schedulers, list) else [schedulers]:
            sch.step()

    def configure_optimizers(self) -> Any:
        """One optimizer per side (image, text) from the YAML factory; optional schedulers."""
        optimizers = [self.optimizer(self.net.side_parameters(m)) for m in MODALITIES]
        if self.scheduler is None:
            return optimizers
        return optimizers, [self.scheduler(opt) for opt in optimizers]
