"""torchvision's side of benchmarks/time_to_accuracy.py: a worker process
that runs in the torch virtualenv (no TensorFlow, no mrcnn) and answers one
JSON command per line on stdin with one JSON line on stdout.

Commands: setup (build the model, load the training images the driver
wrote as .npz files), train (until the training clock reaches a time),
detect (write the detections of validation images as .npz files), quit.

The recipe, from torchvision's own documentation (references/detection:
README.md and train.py, and the model builders' docstrings):

* model: Mask R-CNN with a ResNet-FPN backbone built as torchvision builds
  it without pretrained weights: ``resnet_fpn_backbone(weights=None,
  trainable_layers=5, norm_layer=BatchNorm2d)`` (maskrcnn_resnet50_fpn
  picks trained BatchNorm2d and all 5 stages trainable when no weights are
  given), 256 FPN channels, RPN and heads at their defaults (512 ROIs per
  image, 25 % positives; 256 anchors per image for the RPN);
* SGD, momentum 0.9, weight decay 1e-4, learning rate 0.02 for 16 images a
  step scaled linearly to the batch (0.0025 for 2 images);
* warm-up: the rate rises linearly from 0.001x over the first
  min(1000, steps per epoch - 1) steps (train.py's warmup_factor 1e-3);
* MultiStepLR: x0.1 at epochs 16 and 22 of 26, here at 16/26 and 22/26
  of the time budget;
* augmentation: random horizontal flip, p = 0.5 (the "hflip" policy, the
  default);
* no gradient clipping.
"""

import os
import sys
import time

import numpy as np

from pipe_worker import serve

# train.py's schedule: 26 epochs, x0.1 at 16 and 22; warm-up factor 1e-3.
DROP_FRACTIONS = (16 / 26, 22 / 26)
WARMUP_FACTOR = 1e-3
BASE_LR_PER_16_IMAGES = 0.02


def build_model(torch, settings):
    """torchvision's Mask R-CNN from random weights (see the module doc)."""
    import torchvision
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    backbone = resnet_fpn_backbone(
        backbone_name=settings["backbone"], weights=None,
        norm_layer=torch.nn.BatchNorm2d, trainable_layers=5)
    sizes = settings["anchor_sizes"]
    anchors = AnchorGenerator(sizes=tuple((s,) for s in sizes),
                              aspect_ratios=((0.5, 1.0, 2.0),) * len(sizes))
    del torchvision
    return MaskRCNN(backbone, num_classes=settings["num_classes"],
                    min_size=settings["size"], max_size=settings["size"],
                    rpn_anchor_generator=anchors,
                    box_detections_per_img=settings["detections"],
                    box_score_thresh=settings["min_score"])


class Worker(object):
    """The model, its optimizer, the training images and the clock."""

    def __init__(self, threads):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch

    def setup(self, settings, train_files):
        torch = self.torch
        torch.manual_seed(settings["seed"])
        self.rng = np.random.default_rng(settings["seed"])
        self.model = build_model(torch, settings).train()
        self.batch = settings["batch"]
        self.budget = settings["budget_seconds"]
        self.base_lr = BASE_LR_PER_16_IMAGES * self.batch / 16
        self.optimizer = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=self.base_lr, momentum=0.9, weight_decay=1e-4)
        self.samples = [self._load(path) for path in train_files]
        self.warmup = min(1000, max(1, len(self.samples) // self.batch - 1))
        self.order, self.steps, self.clock = [], 0, 0.0
        return {"parameters": sum(p.numel() for p in self.model.parameters()),
                "warmup_steps": self.warmup, "base_lr": self.base_lr}

    def _load(self, path):
        torch = self.torch
        data = np.load(path)
        image = torch.from_numpy(data["image"]).permute(2, 0, 1).float() / 255
        return image, {"boxes": torch.from_numpy(data["boxes"]).float(),
                       "labels": torch.from_numpy(data["labels"]).long(),
                       "masks": torch.from_numpy(data["masks"]).to(torch.uint8)}

    def _learning_rate(self):
        """Warm-up, then the base rate cut tenfold at each drop fraction."""
        if self.steps < self.warmup:
            alpha = self.steps / self.warmup
            return self.base_lr * (WARMUP_FACTOR * (1 - alpha) + alpha)
        drops = sum(self.clock >= f * self.budget for f in DROP_FRACTIONS)
        return self.base_lr * 0.1 ** drops

    def _next_batch(self):
        """`batch` images, each epoch a new shuffled order, each flipped
        left-right with p = 0.5."""
        images, targets = [], []
        for _ in range(self.batch):
            if not self.order:
                self.order = list(self.rng.permutation(len(self.samples)))
            image, target = self.samples[self.order.pop()]
            if self.rng.random() < 0.5:
                image, target = hflip(image, target)
            images.append(image)
            targets.append(target)
        return images, targets

    def train(self, until_seconds):
        """Trains until this worker's training clock reaches until_seconds
        (a step that starts before it finishes); returns the clock, steps
        and the last loss."""
        loss = None
        while self.clock < until_seconds:
            start = time.perf_counter()
            for group in self.optimizer.param_groups:
                group["lr"] = self._learning_rate()
            images, targets = self._next_batch()
            losses = self.model(images, targets)
            loss = sum(losses.values())
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.steps += 1
            self.clock += time.perf_counter() - start
        return {"clock": self.clock, "steps": self.steps,
                "loss": None if loss is None else float(loss.detach())}

    def detect(self, image_files, out_dir):
        """Writes <out_dir>/<i>.npz (boxes [N, (y1, x1, y2, x2)], scores,
        labels, masks [N, H, W] bit-packed at 0.5) per validation image."""
        torch = self.torch
        self.model.eval()
        paths = []
        with torch.inference_mode():
            for i, path in enumerate(image_files):
                image = np.load(path)["image"]
                tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
                out = self.model([tensor])[0]
                masks = out["masks"][:, 0].numpy() >= 0.5
                paths.append(os.path.join(out_dir, "{}.npz".format(i)))
                np.savez(paths[-1], boxes=out["boxes"].numpy()[:, [1, 0, 3, 2]],
                         scores=out["scores"].numpy(),
                         labels=out["labels"].numpy(),
                         shape=np.array(masks.shape),
                         masks=np.packbits(masks.reshape(-1)))
        self.model.train()
        return {"files": paths}


def hflip(image, target):
    """The image [3, H, W], its masks [N, H, W] and boxes [N, (x1, y1, x2,
    y2)] mirrored left-right."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), dict(target, boxes=boxes,
                                masks=target["masks"].flip(-1))


if __name__ == "__main__":
    serve(Worker(int(sys.argv[1])))
