"""``python -m gan_lab.report FOLDER``: writes the folder's report.html (see :func:`gan_lab.report.main`)."""

from gan_lab.report import main

if __name__ == "__main__":
    main()
