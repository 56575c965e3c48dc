"""Per-pixel reconstruction MSE on images in [0, 1] (the Dual-MCMC paper's Table 3 convention), for ``evaluate.load``.

```python
>>> import evaluate
>>> mse = evaluate.load("metrics/dualmcmc_recon_mse")
>>> mse.compute(predictions=reconstructions, references=images)
{'mse': ..., 'num_images': ...}
```
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Per-pixel mean squared error between reconstructions and the original images, both scaled to [0, 1] (uint8 inputs
are divided by 255). This is how Cui & Han (NeurIPS 2023, Table 3) report reconstruction error ("Inf" / "Inf+L").
"""

_CITATION = """\
@inproceedings{cui2023dualmcmc,
  title={Learning Energy-based Model via Dual-MCMC Teaching}, author={Cui, Jiali and Han, Tian},
  booktitle={NeurIPS}, year={2023}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: reconstructions, each an [H, W, C] (or [C, H, W]) array, uint8 or float in [0, 1].
    references: the original images, same shapes and format, paired with the predictions.
    value_range (str, optional): "auto" (default: a set with any value above 1 is 0..255 data and is divided by 255,
        else it is taken as [0, 1]) or "uint8" (always divide by 255). Judged per input (predictions, references).
Returns:
    mse: mean over all pixels and channels of (prediction - reference)^2; num_images.
"""

_IMAGE = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


def _scaled(images, value_range):
    arr = np.asarray(images, dtype=np.float64)
    if arr.size and (arr.min() < -1e-6 or arr.max() > 255 + 1e-6):
        raise ValueError(f"images must lie in [0, 1] or [0, 255], got min {arr.min():.4g}, max {arr.max():.4g}")
    # evaluate stores the inputs as float32, so "auto" tells 0..255 data by its range: any value above 1
    if value_range == "uint8" or (arr.size and arr.max() > 1 + 1e-6):
        return arr / 255.0
    return arr


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DualMCMCReconMSE(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _IMAGE, "references": _IMAGE}),
        )

    def _compute(self, predictions, references, value_range="auto"):
        if value_range not in ("auto", "uint8"):
            raise ValueError(f"value_range must be 'auto' or 'uint8', got {value_range!r}")
        preds, refs = _scaled(predictions, value_range), _scaled(references, value_range)
        if preds.shape != refs.shape:
            raise ValueError(f"predictions {preds.shape} and references {refs.shape} must have the same shape")
        return {"mse": float(np.mean((preds - refs) ** 2)), "num_images": int(preds.shape[0])}
