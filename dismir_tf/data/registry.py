"""The named data sets: where their raw files come from and how to check them.

``--dataset NAME`` resolves through :data:`DATASETS`.  A named data set keeps
its raw file in ``<data_dir>/<name>/raw/`` and its processed caches in
``<data_dir>/<name>/``.

Integrity.  None of the sources publishes a checksum (SNAP and McAuley's
pages list only file names; Kaggle's files sit behind a login), and we found
no checksum we could trust elsewhere, so none is invented here.  Instead a
download is accepted only if its gzip stream decompresses completely with a
valid CRC-32 and length trailer, and the file must then parse in its format
(the readers reject a malformed line with its line number).  As a last,
warning-level check, the processed counts are compared with the paper's
Table 1 (docs/protocol.md, "The paper's data sets") when the default
preprocessing is used; a mismatch is logged, not raised, because the
published counts were produced from slightly different files (see
data/README.md).
"""

from __future__ import annotations

import dataclasses
import os

from dismir_tf.errors import UserInputError

RAW_SUBDIR = "raw"


@dataclasses.dataclass(frozen=True)
class RawSource:
    """One acceptable raw file of a named data set.

    Attributes:
      filename: the file's name inside ``<data_dir>/<name>/raw/``.
      fmt: its reader format (see ``dismir_tf.data.readers.FORMATS``).
      url: where to download it automatically, or '' when it needs a
        manual download (a login, a licence click-through).
      gzip: whether the file is gzip-compressed as published.
    """

    filename: str
    fmt: str
    url: str = ""
    gzip: bool = False


@dataclasses.dataclass(frozen=True)
class NamedDataset:
    """A data set that ``--dataset NAME`` can load.

    Attributes:
      name: the flag value.
      sources: acceptable raw files, the preferred (downloadable) one first;
        the first one found in the raw directory is used.
      homepage: where a person finds the data and its terms.
      manual: how to fetch the raw file by hand (shown when it is missing
        and cannot be downloaded).
      expected_sha256, expected_size: integrity of the preferred source when
        a trustworthy published value exists (none does today).
      expected_counts: (users, items, interactions) after the default
        preprocessing, as published in the paper (docs/protocol.md, "The
        paper's data sets"); a mismatch is a warning.
      citation: what to cite.
      model_defaults: ModelConfig fields that follow from the data set's
        shape (the paper's section 5.1.4: F, the history length kappa and
        C); a flag overrides them.  No data set sets lambda: it is the
        model's (``dismir_tf.model_specs``).
    """

    name: str
    sources: tuple[RawSource, ...] = ()
    homepage: str = ""
    manual: str = ""
    expected_sha256: str | None = None
    expected_size: int | None = None
    expected_counts: tuple[int, int, int] | None = None
    citation: str = ""
    model_defaults: dict = dataclasses.field(default_factory=dict)

    @property
    def downloadable(self) -> bool:
        return bool(self.sources and self.sources[0].url)

    @property
    def synthetic(self) -> bool:
        return not self.sources


DATASETS: dict[str, NamedDataset] = {
    "synthetic": NamedDataset(
        name="synthetic",
        homepage="generated in-process by dismir_tf.data.synthetic",
    ),
    "gowalla": NamedDataset(
        name="gowalla",
        sources=(
            RawSource(
                filename="loc-gowalla_totalCheckins.txt.gz",
                fmt="snap_gowalla",
                url="https://snap.stanford.edu/data/"
                    "loc-gowalla_totalCheckins.txt.gz",
                gzip=True),
            # RecBole's atomic file, which REMI's preprocessing reads.
            RawSource(filename="gowalla.inter", fmt="recbole_inter"),
        ),
        homepage="https://snap.stanford.edu/data/loc-gowalla.html",
        manual="download https://snap.stanford.edu/data/"
               "loc-gowalla_totalCheckins.txt.gz (from "
               "https://snap.stanford.edu/data/loc-gowalla.html) and save "
               "it, still compressed, as {raw_dir}/"
               "loc-gowalla_totalCheckins.txt.gz; or put RecBole's "
               "gowalla.inter at {raw_dir}/gowalla.inter",
        expected_counts=(165_506, 174_605, 2_061_264),
        citation="E. Cho, S. A. Myers, J. Leskovec. Friendship and "
                 "Mobility: User Movement in Location-Based Social "
                 "Networks. KDD 2011.",
        model_defaults=dict(num_interests=4, max_len=40,
                            hard_negative_candidates=10),
    ),
    "retailrocket": NamedDataset(
        name="retailrocket",
        sources=(
            RawSource(filename="events.csv", fmt="retailrocket_events"),
            # RecBole's atomic file, which REMI's preprocessing reads.
            RawSource(filename="retailrocket-view.inter",
                      fmt="recbole_inter"),
        ),
        homepage="https://www.kaggle.com/datasets/retailrocket/"
                 "ecommerce-dataset",
        manual="Retail Rocket is on Kaggle, which needs a login, so it "
               "cannot be downloaded automatically. Sign in at "
               "https://www.kaggle.com/datasets/retailrocket/"
               "ecommerce-dataset, download the archive (or run `kaggle "
               "datasets download -d retailrocket/ecommerce-dataset`), "
               "extract events.csv from it and put it at "
               "{raw_dir}/events.csv (gzip-compressing it is fine); or put "
               "RecBole's retailrocket-view.inter at "
               "{raw_dir}/retailrocket-view.inter",
        expected_counts=(33_708, 81_635, 356_840),
        citation="Retailrocket recommender system dataset, Kaggle "
                 "(retailrocket/ecommerce-dataset).",
        model_defaults=dict(num_interests=8, max_len=20,
                            hard_negative_candidates=10),
    ),
    "books": NamedDataset(
        name="books",
        sources=(
            RawSource(
                filename="reviews_Books_5.json.gz",
                fmt="amazon_reviews_json",
                url="https://snap.stanford.edu/data/amazon/productGraph/"
                    "categoryFiles/reviews_Books_5.json.gz",
                gzip=True),
        ),
        homepage="https://jmcauley.ucsd.edu/data/amazon/",
        manual="download https://snap.stanford.edu/data/amazon/"
               "productGraph/categoryFiles/reviews_Books_5.json.gz (the "
               "'Books' 5-core reviews of the 2014 Amazon data set, listed "
               "at https://jmcauley.ucsd.edu/data/amazon/) and save it, "
               "still compressed, as {raw_dir}/reviews_Books_5.json.gz",
        expected_counts=(603_668, 367_982, 8_898_041),
        citation="R. He, J. McAuley. Ups and Downs: Modeling the Visual "
                 "Evolution of Fashion Trends with One-Class Collaborative "
                 "Filtering. WWW 2016; J. McAuley et al. Image-based "
                 "Recommendations on Styles and Substitutes. SIGIR 2015.",
        model_defaults=dict(num_interests=6, max_len=20,
                            hard_negative_candidates=50),
    ),
}


def get(name: str) -> NamedDataset:
    """The named data set ``name``.

    Raises:
      UserInputError: if there is no such data set.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise UserInputError(
            f"unknown data set {name!r}; named data sets: "
            f"{', '.join(DATASETS)} (or give --dataset_file and "
            f"--dataset_format for a local file)") from None


def dataset_dir(data_dir: str, name: str) -> str:
    """``<data_dir>/<name>``: the processed caches live here."""
    return os.path.join(data_dir, name)


def raw_dir(data_dir: str, name: str) -> str:
    """``<data_dir>/<name>/raw``: the raw file lives here."""
    return os.path.join(data_dir, name, RAW_SUBDIR)


def find_raw(spec: NamedDataset, data_dir: str) -> tuple[str, RawSource] | None:
    """The first acceptable raw file present on disk, or None."""
    directory = raw_dir(data_dir, spec.name)
    for source in spec.sources:
        path = os.path.join(directory, source.filename)
        if os.path.isfile(path):
            return path, source
    return None


def manual_instructions(spec: NamedDataset, data_dir: str) -> str:
    """How to fetch ``spec``'s raw file by hand, with the real paths."""
    return spec.manual.format(
        raw_dir=os.path.abspath(raw_dir(data_dir, spec.name)))


def count_mismatch(spec: NamedDataset, stats: dict[str, int]) -> str | None:
    """A warning when processed counts differ from the published ones.

    Args:
      spec: the named data set.
      stats: ``SequenceDataset.stats()`` of the processed data.

    Returns:
      None when the counts match or nothing was published, else a one-line
      warning.
    """
    if spec.expected_counts is None:
        return None
    got = (stats["users"], stats["items"], stats["interactions"])
    if got == spec.expected_counts:
        return None
    users, items, inters = spec.expected_counts
    return (f"warning: {spec.name} processed to {got[0]:,} users, "
            f"{got[1]:,} items, {got[2]:,} interactions; the paper reports "
            f"{users:,} / {items:,} / {inters:,} (see data/README.md for why "
            f"these can differ)")
