"""Small building blocks every layer shares and that import nothing else from recorder: phone
numbers, tags, the package's shipped files, background tasks, logging set-up."""
