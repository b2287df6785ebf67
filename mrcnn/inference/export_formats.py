"""One entry point for the three export formats (``MaskRCNN.export``)."""

from mrcnn.inference import export, export_litert, export_onnx

FORMATS = ("saved_model", "onnx", "tflite")


def export_model(model, path, format="saved_model", full_masks=True,
                 class_names=None, **options):
    """Writes `model` (a MaskRCNN in inference mode) for serving: uint8
    images in; boxes in the image's pixels, class ids, scores, mask
    probabilities and (with full_masks) image-size masks out.

    format: "saved_model" (a folder, mrcnn.inference.export), "onnx"
        (mrcnn.inference.export_onnx; option opset) or "tflite" (LiteRT,
        built-in ops only, mrcnn.inference.export_litert; options
        image_shape=(h, w) and weights="float32" | "float16" | "int8").
    class_names: NUM_CLASSES names, "BG" first, stored in the ONNX and
        TFLite metadata.
    Returns path. ONNX and TFLite need the export extra: pip install
    'mrcnn-keras3[export]' (a clear ImportError names it).
    """
    if format == "saved_model":
        return export.export_saved_model(model, path, full_masks)
    if format == "onnx":
        return export_onnx.export_onnx(model, path, full_masks, class_names,
                                       **options)
    if format == "tflite":
        return export_litert.export_litert(
            model, path, full_masks=full_masks, class_names=class_names,
            **options)
    raise ValueError("export: format must be one of {}, got {!r}".format(
        FORMATS, format))
