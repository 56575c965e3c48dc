"""tests/hub_server.py: huggingface_hub's real client code (no mocks) against the local Hub, in-process through the
``online_hub`` fixture and, for diffusers' own loader, in a child interpreter through ``hub_subprocess_env``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from hub_server import GITATTRIBUTES, git_blob_sha, hub_subprocess_env
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "org/tiny"
FILES = {
    "config.json": b'{"version": 1}',
    "weights/model.safetensors": bytes(range(256)) * 40,
    "README.md": b"# Tiny\n",
}


def write(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def test_publish_then_download(online_hub, tmp_path):
    hub = online_hub
    assert hub.endpoint.startswith("http://127.0.0.1:") and hub._server.server_address[0] == "127.0.0.1"
    sha = hub.publish(REPO, write(tmp_path / "src", FILES))
    assert hub.commits(REPO)[-1] == sha and len(hub.commits(REPO)) == 2  # the initial commit, then ours
    assert hub.files(REPO) == {".gitattributes": GITATTRIBUTES, **FILES}

    path = Path(hf_hub_download(REPO, "model.safetensors", subfolder="weights"))
    assert path.read_bytes() == FILES["weights/model.safetensors"]
    assert path.is_relative_to(tmp_path) and f"/snapshots/{sha}/" in path.as_posix()  # the cache is the test's

    snapshot = snapshot_download(REPO, allow_patterns=["*.json", "weights/*"])
    assert tree(snapshot) == {k: v for k, v in FILES.items() if k != "README.md"}

    info = HfApi().model_info(REPO)
    assert info.sha == sha and {s.rfilename for s in info.siblings} == {".gitattributes", *FILES}
    info = huggingface_hub.model_info(REPO, files_metadata=True)  # the module-level HfApi instance (diffusers')
    assert {s.rfilename: (s.size, s.blob_id) for s in info.siblings}["config.json"] == (
        len(FILES["config.json"]),
        git_blob_sha(FILES["config.json"]),
    )
    assert HfApi().list_repo_files(REPO) == sorted([".gitattributes", *FILES])
    assert {e.path for e in HfApi().list_repo_tree(REPO)} == {".gitattributes", "README.md", "config.json", "weights"}
    assert [e.path for e in HfApi().list_repo_tree(REPO, path_in_repo="weights")] == ["weights/model.safetensors"]
    assert huggingface_hub.repo_exists(REPO) and not huggingface_hub.repo_exists("org/missing")
    assert huggingface_hub.file_exists(REPO, "config.json") and not huggingface_hub.file_exists(REPO, "x.bin")
    assert not huggingface_hub.file_exists(REPO, "config.json", revision="no-such-branch")

    assert ("HEAD", "/org/tiny/resolve/main/weights/model.safetensors") in hub.requests
    assert ("GET", f"/api/models/{REPO}/tree/{sha}") in hub.requests  # snapshot_download lists the resolved commit
    assert hub.unhandled == []


def test_old_commits_stay_downloadable(online_hub, tmp_path):
    hub = online_hub
    old = hub.publish(REPO, write(tmp_path / "v1", FILES))
    new = hub.publish(REPO, write(tmp_path / "v2", {"config.json": b'{"version": 2}', "extra.txt": b"new"}))
    assert hub.commits(REPO)[-2:] == [old, new]
    assert hub.files(REPO, old) == {".gitattributes": GITATTRIBUTES, **FILES}

    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == b'{"version": 2}'
    assert Path(hf_hub_download(REPO, "config.json", revision=old)).read_bytes() == b'{"version": 1}'
    assert Path(hf_hub_download(REPO, "config.json", revision=old[:10])).read_bytes() == b'{"version": 1}'
    assert Path(hf_hub_download(REPO, "config.json", revision="main")).read_bytes() == b'{"version": 2}'
    snapshot = Path(snapshot_download(REPO, revision=old))
    assert snapshot.name == old and tree(snapshot) == {".gitattributes": GITATTRIBUTES, **FILES}
    assert "extra.txt" in tree(snapshot_download(REPO))
    assert HfApi().model_info(REPO, revision=old).sha == old and HfApi().model_info(REPO).sha == new
    assert hub.unhandled == []


def test_errors_are_the_clients_typed_errors(online_hub, tmp_path):
    hub = online_hub
    before = hub.publish(REPO, write(tmp_path / "src", FILES))
    for call in (
        lambda: hf_hub_download("org/missing", "config.json"),
        lambda: HfApi().model_info("org/missing"),
        lambda: snapshot_download("org/missing"),
        lambda: HfApi().list_repo_files("org/missing"),
    ):
        with pytest.raises(RepositoryNotFoundError):
            call()
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "missing.bin")
    with pytest.raises(EntryNotFoundError):
        list(HfApi().list_repo_tree(REPO, path_in_repo="missing"))
    for call in (
        lambda: hf_hub_download(REPO, "config.json", revision="no-such-branch"),
        lambda: snapshot_download(REPO, revision="no-such-branch"),
        lambda: HfApi().model_info(REPO, revision="0" * 40),
    ):
        with pytest.raises(RevisionNotFoundError):
            call()

    hf_hub_download(REPO, "config.json")
    hub.delete_file(REPO, "config.json")
    with pytest.raises(EntryNotFoundError):  # even though an older main's copy is in the cache
        hf_hub_download(REPO, "config.json")
    assert Path(hf_hub_download(REPO, "config.json", revision=before)).read_bytes() == FILES["config.json"]
    assert hub.unhandled == []


def test_unimplemented_requests_fail_loudly(online_hub, tmp_path):
    hub = online_hub
    hub.publish(REPO, write(tmp_path / "src", FILES))
    with pytest.raises(HfHubHTTPError) as error:
        HfApi().list_repo_commits(REPO)
    assert error.value.response.status_code == 501
    assert f"LocalHub does not implement GET /api/models/{REPO}/commits/main" in str(error.value)
    with pytest.raises(LocalEntryNotFoundError):  # the client hides the 501 behind a "not in the cache" error...
        hf_hub_download("org/data", "train.csv", repo_type="dataset")
    # ... which is why every test ends with this assertion
    assert hub.unhandled == [
        ("GET", f"/api/models/{REPO}/commits/main"),
        ("HEAD", "/datasets/org/data/resolve/main/train.csv"),
    ]
    hub.unhandled.clear()


@pytest.mark.parametrize("xet", [False, True], ids=["create_commit", "xet-pipeline"])
def test_upload_through_the_client(online_hub, tmp_path, monkeypatch, xet):
    """``upload_folder`` takes ``create_commit`` without hf_xet (what ``online_hub`` sets) and the Xet pipeline
    (pull request opened through ``/discussions``) with it: both end up as regular files, nothing goes to LFS/Xet."""
    from safetensors.torch import save_file

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", not xet)
    hub, repo, api = online_hub, "org/uploaded", HfApi(token="hf_fake")
    assert api.create_repo(repo, private=True).repo_id == repo
    assert api.create_repo(repo, exist_ok=True).repo_id == repo
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(repo)
    assert error.value.response.status_code == 409

    src = write(
        tmp_path / "src",
        {"config.json": b'{"v": 1}', "sub/notes.txt": b"notes\n", "README.md": b"---\nlicense: mit\n---\n# Card\n"},
    )
    save_file({"w": torch.randn(512, 1024, generator=torch.Generator().manual_seed(0))}, src / "model.safetensors")
    assert (src / "model.safetensors").stat().st_size > 2_000_000
    commit = api.upload_folder(repo_id=repo, folder_path=src, commit_message="Upload weights")
    main = hub.commits(repo)[-1]
    assert commit.oid == main and hub.files(repo) == {".gitattributes": GITATTRIBUTES, **tree(src)}
    assert tree(snapshot_download(repo)) == {".gitattributes": GITATTRIBUTES, **tree(src)}  # byte-identical
    with pytest.raises(RepositoryNotFoundError):  # private: without a token it does not exist
        HfApi(token=False).model_info(repo)

    api.upload_folder(repo_id=repo, folder_path=src)  # unchanged: the client sends no commit
    assert hub.commits(repo)[-1] == main

    (src / "config.json").write_bytes(b'{"v": 2}')
    pr = api.upload_folder(repo_id=repo, folder_path=src, create_pr=True)
    assert (pr.pr_revision, pr.pr_num) == ("refs/pr/1", 1) and hub.commits(repo)[-1] == main
    assert hub.commits(repo, "refs/pr/1")[-1] == pr.oid == api.model_info(repo, revision="refs/pr/1").sha
    assert Path(hf_hub_download(repo, "config.json", revision="refs/pr/1")).read_bytes() == b'{"v": 2}'
    assert Path(hf_hub_download(repo, "config.json")).read_bytes() == b'{"v": 1}'
    assert ("HEAD", f"/{repo}/resolve/refs%2Fpr%2F1/config.json") in hub.requests

    api.delete_file("sub/notes.txt", repo_id=repo)
    assert "sub/notes.txt" not in hub.files(repo) and "sub/notes.txt" in hub.files(repo, main)
    assert {m for m, p in hub.requests if "/preupload/" in p or "/commit/" in p} == {"POST"}
    assert hub.unhandled == []


CHILD = """
import sys
import numpy as np
import torch
from diffusers import DiffusionPipeline

threads, pinned, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(threads)
for name, revision in (("main", None), ("pinned", pinned)):
    pipe = DiffusionPipeline.from_pretrained("org/ddpm-tiny", revision=revision)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").images
    np.save(f"{out}/{name}.npy", image)
    print(name, type(pipe).__name__)
"""


def ddpm(seed: int):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=10))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe) -> np.ndarray:
    return pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").images


def test_diffusers_from_pretrained_in_a_child_process(local_hub, tmp_path):
    """A child interpreter imports torch and diffusers: ~10 s."""
    v1, v2 = ddpm(0), ddpm(1)
    v1.save_pretrained(tmp_path / "v1")
    v2.save_pretrained(tmp_path / "v2")
    sha1 = local_hub.publish("org/ddpm-tiny", tmp_path / "v1")
    local_hub.publish("org/ddpm-tiny", tmp_path / "v2")
    env = hub_subprocess_env(local_hub, tmp_path)
    assert (env["HF_ENDPOINT"], env["HF_HUB_OFFLINE"], env["HF_TOKEN"]) == (local_hub.endpoint, "0", "hf_fake")
    assert "127.0.0.1" in env["NO_PROXY"].split(",") and Path(env["HF_HUB_CACHE"]).is_relative_to(tmp_path)

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(torch.get_num_threads()), sha1, str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split() == ["main", "DDPMPipeline", "pinned", "DDPMPipeline"]
    expected_v1, expected_v2 = sample(v1), sample(v2)
    assert not np.array_equal(expected_v1, expected_v2)
    np.testing.assert_array_equal(np.load(tmp_path / "main.npy"), expected_v2)
    np.testing.assert_array_equal(np.load(tmp_path / "pinned.npy"), expected_v1)
    assert (Path(env["HF_HUB_CACHE"]) / "models--org--ddpm-tiny" / "snapshots" / sha1).is_dir()
    assert ("GET", f"/org/ddpm-tiny/resolve/{sha1}/unet/diffusion_pytorch_model.safetensors") in local_hub.requests
    assert local_hub.unhandled == []
