"""The COCO-trained weights of matterport's v2.0 release: where they are,
how big, their checksum, and their download (``mrcnn.utils`` re-exports
these names, as the original had them there).
"""

import os

from mrcnn.weights import download

# URL of the COCO weights released with matterport's Mask R-CNN v2.0.
COCO_MODEL_URL = ("https://github.com/matterport/Mask_RCNN/releases/download/"
                  "v2.0/mask_rcnn_coco.h5")
# The release publishes no checksum. Its size and MD5 as published by
# others who download that file: the MD5 in NVIDIA/TensorRT's
# samples/opensource/sampleUffMaskRCNN/README.md ("The md5sum of model file
# is e98aaff6f99e307b5e2a8a3ff741a518") and alibaba/ai-matrix's
# macro_benchmark/Mask_RCNN/checksum.md5 (same value); the size in wget
# logs of that URL ("Length: 257557808 ... saved [257557808/257557808]")
# and in h5py's truncated-file errors ("stored_eof = 257557808").
COCO_MODEL_SIZE = 257557808
COCO_MODEL_MD5 = "e98aaff6f99e307b5e2a8a3ff741a518"




class WeightsDownloadError(OSError):
    """The COCO weights could not be downloaded."""


def download_trained_weights(coco_model_path, verbose=1):
    """Downloads the COCO-trained weights from matterport's release.

    coco_model_path: where to save the .h5 file. The file appears only once
        the download is complete and checked: every byte the server
        announced, COCO_MODEL_SIZE bytes in all, MD5 COCO_MODEL_MD5 (see
        mrcnn.weights.download.fetch). A stalled connection times out.
    Raises WeightsDownloadError (an OSError) saying which URL to fetch by
    hand when the download fails, e.g. without network or truncated;
    coco_model_path is then left as it was.
    """
    coco_model_path = os.fspath(coco_model_path)
    if verbose > 0:
        print("Downloading pretrained model to " + coco_model_path + " ...")
    try:
        download.fetch(COCO_MODEL_URL, coco_model_path, size=COCO_MODEL_SIZE,
                       md5=COCO_MODEL_MD5, verbose=False)
    except download.DownloadError as error:
        raise WeightsDownloadError(
            "Could not download the COCO weights from {} ({}). Download the "
            "file by hand and save it as {}".format(
                COCO_MODEL_URL, error.__cause__ or error,
                coco_model_path)) from error
    if verbose > 0:
        print("... done downloading pretrained model!")


def damaged_trained_weights(coco_model_path):
    """Why the COCO weights file at coco_model_path cannot be used ("missing",
    a wrong size, not HDF5), or None when it looks whole. Cheap: checks the
    size and the HDF5 signature, not the MD5."""
    return download.damaged_hdf5(os.fspath(coco_model_path), COCO_MODEL_SIZE)
