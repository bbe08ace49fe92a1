"""The one-direction data flow: read a tree, transform each sample, write a variant (a dataset
folder maskbench writes: native layout, ``labels.csv``, ``manifest.json``).

* :mod:`~maskbench.pipeline.write`: :func:`write_variant`, the run a command starts;
* :mod:`~maskbench.pipeline.job`: one source sample's way through it;
* :mod:`~maskbench.pipeline.journal`: what ``--resume`` trusts;
* :mod:`~maskbench.pipeline.workers`: chunks, here or in forked workers;
* :mod:`~maskbench.pipeline.merge`: joining ``--shard`` outputs.
"""

from maskbench.pipeline.job import Transform, VariantJob, inherited_columns
from maskbench.pipeline.merge import merge_variants
from maskbench.pipeline.write import RunSummary, check_source, parse_shard, resolve_split_rule, write_variant

__all__ = ["RunSummary", "Transform", "VariantJob", "check_source", "inherited_columns", "merge_variants",
           "parse_shard", "resolve_split_rule", "write_variant"]
