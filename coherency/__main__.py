from coherency.cli import app

app(prog_name="coherency")
