"""Scratch driver (not in the tree): train.py with the capsule's padding_in_softmax forced off."""
import runpy, sys
sys.path.insert(0, "/work/main")
import dismir_tf.capsule as C
_init = C.CapsuleInterestExtractor.__init__
def __init__(self, *a, **k):
    k["padding_in_softmax"] = False
    _init(self, *a, **k)
C.CapsuleInterestExtractor.__init__ = __init__
sys.argv = ["train.py"] + sys.argv[1:]
runpy.run_path("/work/main/train.py", run_name="__main__")
