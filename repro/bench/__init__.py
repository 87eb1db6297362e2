"""`pulse-repro bench`: evaluation and training throughput, peak memory and stage times, side by side with
the MLLMU-Bench way of doing the same work.

    shapes.py     paper-scale model shapes built from config with random weights (--shape)
    workload.py   the data and the model one bench run measures
    baselines.py  the MLLMU-Bench way: generate per question at batch size 1, a deep-copied reference
    evaluation.py (a) MCQ throughput of the kit's scorers against the baseline, and their agreement
    training.py   (b) throughput of a fixed number of fine-tuning / unlearning steps (and CUDA peaks)
    memory.py     (c) peak memory: CUDA allocator peaks, or the resident-set peak of a fresh process
    memworker.py  the fresh process memory.py starts for one method on CPU
    flops.py      model FLOPs utilisation against the device's bf16 peak
    stages.py     (d) the wall time of each stage of `all`, from RUN_DIR/stages.json
    output.py     one JSON object, or tables
    run.py        the command: all of the above in one run
"""
