"""The bundled trainer: ``medviewer --train`` and ``medviewer make-dataset`` (issue 4).

Modules (all Qt-free):
  data      discover(root, label_regex=, labels_csv=, val_fraction=, test_fraction=, seed=) -> DataIndex
  images    load_images(samples, classes, spec) -> ImageSet (decoded once, engine.preprocess), summary()
  synth     make_dataset(out, classes, n, size, seed) -> Path; read_masks(root)
  model     build(arch, num_classes, weights="imagenet"|"none"|PATH, dropout, hidden, head_batchnorm)
  augment   AugmentSpec, make_spec(preset, **overrides), augment_batch(x, spec, generator)
  loop      train_one_epoch(), evaluate() (inference_mode), fit(args, x, y, train_idx, val_idx, ...)
  search    run_search(args, images, ...) (Optuna TPE + median pruner, OUT/search.db)
  metrics   classification_metrics(y_true, probs, classes) (scikit-learn; report.json "test")
  report    report.json / predictions.csv / dataset.json; plots: report.html
  ddp       torchrun support (gloo on CPU, nccl on GPUs)
  bootstrap bootstrap_ci(y, probs, classes, n, seed) -> report.json test.ci95; paired_bootstrap(...) p-values
  folds     --folds K: patient_groups(), make_folds() (StratifiedGroupKFold), run_cv() -> report.json "cv"
  featcache frozen-backbone feature cache: decide(), prepare() -> FeatureCache (fit trains the head on it)
  runlog    history.csv (EpochLog, write_history_csv) and --tensorboard events
  lrfind    --lr-find: range_test(), suggestions() (fastai valley / steep / minimum/10), lr_find.png
  compare   `medviewer compare`: load_run(), build_rows(), compare() -> compare.csv (+ compare_html)
  run       main(args): the whole pipeline;  cli: get_args_parser(), main_train(argv), main_make_dataset(argv)
"""
