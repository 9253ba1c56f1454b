module github.com/gorelstorage/gorelstorage

go 1.26

require (
	github.com/mattn/go-sqlite3 v1.14.53 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)
