"""The numpy structures users meet in ``mrcnn.utils``: no TensorFlow here.

* ``dataset``: ``Dataset``, the base class of every dataset;
* ``boxes``: boxes of masks, IoU, NMS, normalization, and the box coder
  (``encode_boxes`` / ``decode_boxes``: boxes to std-dev-scaled deltas and
  back, the numpy twin of ``network.box_ops``' coder);
* ``masks``: mask IoU, mini masks, masks pasted into images;
* ``instance_layers``: instance masks packed into label images, the
  training feed's fast form;
* ``polygons``: polygons to masks (scikit-image's pixels, OpenCV's
  speed);
* ``resizing``: ``resize_image``, ``resize_mask``;
* ``anchors``: anchor generation;
* ``image_io``: image files to RGB uint8, the one decoder;
* ``orientation``: EXIF orientation;
* ``dropped``: reporting instances that had to be dropped;
* ``class_identity``: class ids by name from the training run's names.

May import: the foundation (``config``, ``runtime``, ``atomic_files``)
only.
"""
