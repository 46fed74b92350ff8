"""HashCNN (Guo, Zhang and Li, PAKDD 2016, reconstructed): network, loss layer and module."""

from hashrepro.models.hashcnn.loss import HashCNNLoss
from hashrepro.models.hashcnn.module import HashCNN
from hashrepro.models.hashcnn.network import HashCNNNet, HashLayer, sign_ste

__all__ = ["HashCNN", "HashCNNLoss", "HashCNNNet", "HashLayer", "sign_ste"]
