"""Scratch driver (not in the tree): train.py with Adam epsilon 1e-8 (torch's default)."""
import runpy, sys
sys.path.insert(0, "/work/main")
import dismir_tf.training as T
_orig = T.make_optimizer
def make_optimizer(cfg):
    o = _orig(cfg)
    o.epsilon = 1e-8
    print("Adam epsilon", o.epsilon, type(o).__name__, flush=True)
    return o
T.make_optimizer = make_optimizer
sys.argv = ["train.py"] + sys.argv[1:]
runpy.run_path("/work/main/train.py", run_name="__main__")
