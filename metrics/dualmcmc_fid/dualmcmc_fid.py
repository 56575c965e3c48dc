"""FID (and optionally Inception Score) between generated and reference images, for ``evaluate.load``.

Uses :mod:`hf_dualmcmc.evaluation.fid`, i.e. torch-fidelity's InceptionV3 and Frechet distance. Images are
``[H, W, C]`` arrays (uint8, or floats in ``[0, 1]``); grayscale is replicated to RGB.

```python
>>> import evaluate
>>> fid = evaluate.load("metrics/dualmcmc_fid")
>>> fid.compute(predictions=samples, references=real, inception_weights="weights-inception-2015-12-05-6726825d.pth")
{'fid': ..., 'num_predictions': ..., 'num_references': ...}
```
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Frechet Inception Distance (Heusel et al., 2017) between the predictions (generated images) and the references (real
images), computed with torch-fidelity's TensorFlow-compatible InceptionV3 (pool3, 2048-d by default). Optionally the
Inception Score (Salimans et al., 2016) of the predictions. Part of hf-dualmcmc's evaluation suite.
"""

_CITATION = """\
@inproceedings{heusel2017gans,
  title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium},
  author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and Hochreiter, Sepp},
  booktitle={NeurIPS}, year={2017}
}
@inproceedings{cui2023dualmcmc,
  title={Learning Energy-based Model via Dual-MCMC Teaching}, author={Cui, Jiali and Han, Tian},
  booktitle={NeurIPS}, year={2023}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images, each an [H, W, C] array (uint8, or float in [0, 1]).
    references: real images, same format (any count >= 2; need not match the predictions' count).
    inception_weights (str, optional): path to torch-fidelity's weights-inception-2015-12-05-6726825d.pth
        (required offline).
    inception_weights_sha256 (str, optional): the SHA-256 the weights file must have (default: the published
        file's); pass it for another weights file you trust. The file is never unpickled unverified.
    feature_layer (str, optional): "2048" (standard FID, default), or "64"/"192"/"768".
    compute_is (bool, optional): also return the Inception Score of the predictions (default False).
    device (str, optional): "cpu" (default) or "cuda".
Returns:
    fid: the Frechet Inception Distance; is_mean/is_std when compute_is; num_predictions, num_references.
"""

_IMAGE = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DualMCMCFID(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _IMAGE, "references": _IMAGE}),
            reference_urls=["https://github.com/toshas/torch-fidelity", "https://github.com/bioinf-jku/TTUR"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Not supported: FID needs the two whole sets at once (see ``compute``)."""
        raise ValueError("dualmcmc_fid compares two image sets of any sizes: call compute(predictions=..., references=...)")

    def compute(self, *, predictions=None, references=None, **kwargs):
        """FID between ``predictions`` and ``references`` (two image sets, sizes may differ)."""
        # the two sets may differ in size, which evaluate's paired storage does not allow: compute directly
        if predictions is None or references is None:
            raise ValueError("dualmcmc_fid needs both predictions (generated images) and references (real images)")
        return self._compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, inception_weights=None, inception_weights_sha256=None,
                 feature_layer="2048", compute_is=False, device="cpu"):
        from hf_dualmcmc.evaluation.fid import InceptionScorer, frechet_distance
        from hf_dualmcmc.evaluation.images import to_uint8

        preds, refs = to_uint8(np.asarray(predictions)), to_uint8(np.asarray(references))
        scorer = InceptionScorer(inception_weights, expected_sha256=inception_weights_sha256,
                                 fid_feature_layer=str(feature_layer), device=device, compute_is=bool(compute_is))
        pred_feats = scorer.features(preds)
        out = {
            "fid": frechet_distance(scorer.statistics(features=pred_feats), scorer.statistics(refs)),
            "num_predictions": int(preds.shape[0]),
            "num_references": int(refs.shape[0]),
        }
        if compute_is:
            out["is_mean"], out["is_std"] = scorer.inception_score(features=pred_feats)
        return out
