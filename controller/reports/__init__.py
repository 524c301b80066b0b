"""What a job or a batch proved, from the historian's records: the certificate (text, HTML, PDF) and
the `depline report` command."""
