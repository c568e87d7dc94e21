"""The project's Keras layers, one class a file.

Interest extractors (a user's history -> F interest vectors):
  CapsuleInterestExtractor  DisMIR, MIND, ComiRec-DR (dynamic routing)
  SelfAttentiveExtractor    ComiRec-SA, REMI, Re4, PIMIRec
  UserGuidedRouting         UMI
Readouts over interests:
  InterestAttention         DisMIR's attention over its interests (eq. 5)
  LabelAwareAttention       MIND's and ComiRec's training readout
Retrieval:
  MultiInterestBruteForce   TFRS's BruteForce index over every interest
Model-specific blocks:
  InterestRefinement (UMI), IntervalAttention and StarGraphInteraction
  (PIMIRec), InterestReconstructor (Re4), SASRecBlock (SASRec)

Shared functions (squash, masked_mean, ...) are in dismir_tf.layers.ops.
Layers import nothing from dismir_tf.models: the models build on them.
"""

from dismir_tf.layers.capsule_interest_extractor import CapsuleInterestExtractor
from dismir_tf.layers.interest_attention import InterestAttention
from dismir_tf.layers.interest_reconstructor import InterestReconstructor
from dismir_tf.layers.interest_refinement import InterestRefinement
from dismir_tf.layers.interval_attention import IntervalAttention
from dismir_tf.layers.label_aware_attention import LabelAwareAttention
from dismir_tf.layers.multi_interest_brute_force import MultiInterestBruteForce
from dismir_tf.layers.sasrec_block import SASRecBlock
from dismir_tf.layers.self_attentive_extractor import SelfAttentiveExtractor
from dismir_tf.layers.star_graph_interaction import StarGraphInteraction
from dismir_tf.layers.user_guided_routing import UserGuidedRouting

__all__ = [
    "CapsuleInterestExtractor",
    "InterestAttention",
    "InterestReconstructor",
    "InterestRefinement",
    "IntervalAttention",
    "LabelAwareAttention",
    "MultiInterestBruteForce",
    "SASRecBlock",
    "SelfAttentiveExtractor",
    "StarGraphInteraction",
    "UserGuidedRouting",
]
