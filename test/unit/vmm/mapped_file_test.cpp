// SPDX-License-Identifier: Apache-2.0
// MappedFile: maps whole files read-only; empty files, directories and missing files.
#include "mapped_file.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <string>

using namespace vfsdax::vmm;

namespace {

struct TempDir {
    TempDir() {
        char name[] = "/tmp/mapped_file_test.XXXXXX";
        REQUIRE(::mkdtemp(name));
        path = name;
    }
    ~TempDir() {
        std::remove((path + "/data").c_str());
        std::remove((path + "/empty").c_str());
        ::rmdir(path.c_str());
    }
    std::string write(const std::string& name, const std::string& content) {
        const std::string file = path + "/" + name;
        FILE* f = std::fopen(file.c_str(), "wb");
        REQUIRE(f);
        REQUIRE(std::fwrite(content.data(), 1, content.size(), f) == content.size());
        std::fclose(f);
        return file;
    }
    std::string path;
};

}  // namespace

TEST_CASE("a file maps whole, and stays mapped when the object moves") {
    TempDir dir;
    const std::string content(10000, 'k');
    auto file = MappedFile::open(dir.write("data", content));
    REQUIRE(file);
    MappedFile moved(std::move(*file));
    CHECK(file->bytes().empty());
    REQUIRE(moved.bytes().size() == content.size());
    CHECK(std::memcmp(moved.bytes().data(), content.data(), content.size()) == 0);
}

TEST_CASE("an empty file maps to no bytes") {
    TempDir dir;
    auto file = MappedFile::open(dir.write("empty", ""));
    REQUIRE(file);
    CHECK(file->bytes().empty());
}

TEST_CASE("what cannot be mapped is named with the reason") {
    TempDir dir;
    CHECK(MappedFile::open(dir.path + "/missing").error() ==
          dir.path + "/missing: open: No such file or directory");
    CHECK(MappedFile::open(dir.path).error() == dir.path + ": not a regular file");
}
