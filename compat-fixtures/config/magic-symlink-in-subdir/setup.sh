ln -s ../real/app.ini sub/link.ini
