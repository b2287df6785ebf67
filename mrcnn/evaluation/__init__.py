"""Evaluation: how good the detections are.

* ``coco_eval``: COCO metrics by pycocotools (bbox and segm);
* ``matching``: matterport's ``compute_matches`` / ``compute_ap`` and
  friends (numpy);
* ``evaluate``: mAP over a dataset, ``evaluate_model``, the per-epoch
  evaluation callback;
* ``error_analysis``: the confusion matrix of matched instances;
* ``plots``: the confusion matrix and per-class AP figures.

May import: drawing, structures and the foundation. A model comes in as
an argument (its ``detect``), so evaluation imports neither the network
nor inference, nor training or the faces.
"""
