"""``python -m dismir_tf.analyze`` is ``python -m dismir_tf.analysis`` (the
command's code and help: dismir_tf/analysis/__main__.py)."""

if __name__ == "__main__":
    from dismir_tf.analysis.__main__ import run

    run()
