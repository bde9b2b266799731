"""Parses a Prometheus text exposition from standard input with prometheus_client's parser (the one Python
exporters and scrapers use) and prints one line per sample: `name{label="value",...} value`, labels sorted.
Exits 1, with the parser's error, when the text does not parse."""
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    for family in text_string_to_metric_families(sys.stdin.read()):
        print(f"# {family.name} {family.type}")
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            print(f"{sample.name}{{{labels}}} {sample.value}")
except Exception as error:  # the parser raises ValueError and others on malformed input
    print(f"parse error: {error}", file=sys.stderr)
    sys.exit(1)
