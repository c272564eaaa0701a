: > afile
mkdir adir
ln -s afile alink
ln -s nothere dangling
