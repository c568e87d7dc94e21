"""The tune command; its code and help: dismir_tf/commands/tune.py
(installed as ``dismir-tune``)."""

from dismir_tf.commands.tune import run

if __name__ == "__main__":
    run()
