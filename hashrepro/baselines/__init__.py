"""Classic (non-deep) hashing baselines on numpy features.

Single-modal: ``LSH(num_bits, seed=0, **hyperparams).fit(x, labels).encode(x)``.
Cross-modal: ``CCAITQ(num_bits, ...).fit(x_image, x_text, labels).encode(x, modality)``.
Codes are real-valued (M, K); their sign (0 -> +1) is the hash. Every class follows
scikit-learn's estimator conventions (``get_params``, ``set_params``, ``clone``,
``check_is_fitted``).
"""

from hashrepro.baselines.base import CrossModalBaseline, HashingBaseline
from hashrepro.baselines.crossmodal import CCAITQ, CMFH, CVH, SCMSeq
from hashrepro.baselines.ksh import KSH
from hashrepro.baselines.single import ITQ, LSH, SDH, SH

SINGLE_BASELINES: dict[str, type[HashingBaseline]] = {
    "lsh": LSH,
    "sh": SH,
    "itq": ITQ,
    "ksh": KSH,
    "sdh": SDH,
}
CROSSMODAL_BASELINES: dict[str, type[CrossModalBaseline]] = {
    "cca_itq": CCAITQ,
    "cvh": CVH,
    "scm_seq": SCMSeq,
    "cmfh": CMFH,
}

__all__ = [
    "CCAITQ",
    "CMFH",
    "CROSSMODAL_BASELINES",
    "CVH",
    "ITQ",
    "KSH",
    "LSH",
    "SDH",
    "SH",
    "SCMSeq",
    "SINGLE_BASELINES",
    "CrossModalBaseline",
    "HashingBaseline",
]
